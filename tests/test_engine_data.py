"""PairedData: the default order is unchanged; length grouping is deterministic, resumable,
covers every example once per epoch, shards across ranks and pads less."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch

from constrained_unlearn.engine import PairedData
from constrained_unlearn.llm import pad_collate


def _rows(n: int, seed: int, low: int = 3, high: int = 40) -> list[dict[str, torch.Tensor]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        length = rng.randint(low, high)
        ids = torch.full((length,), i + 1)  # the id says which example it is
        out.append({"input_ids": ids, "labels": ids.clone()})
    return out


def _data(n_forget=37, n_retain=53, batch=4, **kwargs) -> PairedData:
    return PairedData(
        _rows(n_forget, 0),
        _rows(n_retain, 1),
        batch_size=batch,
        collate_fn=lambda b: pad_collate(b, 0),
        seed=5,
        **kwargs,
    )


def _padded_positions(data: PairedData, epoch: int = 0) -> int:
    """Σ over batches of B · max length − Σ lengths, forget and retain."""
    pad = 0
    for f_idx, r_idx in data.epoch_index_batches(epoch):
        for which, idx in (("forget", f_idx), ("retain", r_idx)):
            lengths = [data.lengths(which)[i] for i in idx]
            pad += len(lengths) * max(lengths) - sum(lengths)
    return pad


def test_default_order_is_the_seeded_permutation_as_before():
    # the order without grouping is a published contract (checkpoints resume into it)
    data = _data(n_forget=10, n_retain=7, batch=3)
    epoch = 2
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(5 * 1_000_003 + 2)).tolist()
    forget = [perm[i : i + 3] for i in range(0, 10, 3)]
    generator = torch.Generator().manual_seed(5 * 1_000_003 + 7_919 * 3)
    stream = torch.randperm(7, generator=generator).tolist()
    stream += torch.randperm(7, generator=generator).tolist()
    retain = [stream[i * 3 : (i + 1) * 3] for i in range(4)]
    assert data.epoch_index_batches(epoch) == list(zip(forget, retain, strict=True))


@pytest.mark.parametrize("shuffle", [True, False])
def test_grouped_order_is_deterministic_and_changes_with_the_epoch(shuffle):
    a = _data(group_by_length=True, group_size=3, shuffle=shuffle)
    b = _data(group_by_length=True, group_size=3, shuffle=shuffle)
    assert a.epoch_index_batches(0) == b.epoch_index_batches(0)
    assert a.epoch_index_batches(1) == b.epoch_index_batches(1)
    if shuffle:
        assert a.epoch_index_batches(0) != a.epoch_index_batches(1)


def test_grouping_covers_every_example_once_per_epoch():
    plain = _data()
    grouped = _data(group_by_length=True, group_size=3)
    for epoch in range(3):
        batches = grouped.epoch_index_batches(epoch)
        assert len(batches) == grouped.batches_per_epoch() == math.ceil(37 / 4)
        forget = [i for f, _ in batches for i in f]
        assert sorted(forget) == list(range(37))
        # retain: the same multiset of indices as the ungrouped stream, re-ordered
        retain = Counter(i for _, r in batches for i in r)
        assert retain == Counter(i for _, r in plain.epoch_index_batches(epoch) for i in r)
        assert all(len(r) == 4 for _, r in batches)


def test_grouping_sorts_within_groups_and_pads_less():
    data = _data(n_forget=200, n_retain=200, group_by_length=True, group_size=10)
    lengths = data.lengths("forget")
    batches = data.epoch_index_batches(0)
    # inside a group of 10 batches every batch is a run of the group's sorted lengths: the
    # ranges of lengths of two batches of one group overlap at most at an endpoint
    for g in range(0, len(batches), 10):
        spans = sorted(
            (min(lengths[i] for i in f), max(lengths[i] for i in f)) for f, _ in batches[g : g + 10]
        )
        for (_, hi), (lo, _) in zip(spans, spans[1:]):
            assert hi <= lo
    plain = _data(n_forget=200, n_retain=200)
    # lengths uniform on 3..40 and 4 per batch: random batches pad ~ 40 %, sorted ones ~ 2 %
    assert _padded_positions(data) < 0.2 * _padded_positions(plain)


def test_grouped_iteration_resumes_mid_epoch():
    data = _data(group_by_length=True, group_size=2)
    full = list(data.iter_epoch(1))
    tail = list(data.iter_epoch(1, start=4))
    assert len(tail) == len(full) - 4
    for (f1, r1), (f2, r2) in zip(full[4:], tail, strict=True):
        for key in ("input_ids", "attention_mask", "labels"):
            assert torch.equal(f1[key], f2[key]) and torch.equal(r1[key], r2[key])


@pytest.mark.parametrize("world", [2, 3])
def test_grouped_shards_are_disjoint_equal_and_homogeneous(world):
    n = 37
    data = _data(n_forget=n, group_by_length=True, group_size=2)
    shards = [data.epoch_index_batches(0, rank, world) for rank in range(world)]
    counts = {len(s) for s in shards}
    assert counts == {data.batches_per_epoch(world)}
    forget = Counter(i for s in shards for f, _ in s for i in f)
    assert set(forget) == set(range(n))
    total = math.ceil(n / world) * world
    assert sum(forget.values()) == total  # only the wrap-around examples appear twice
    assert sum(c - 1 for c in forget.values()) == total - n
    # batch i of every rank comes from block i of the sorted global order: within a group
    # (2 blocks here) the blocks' length ranges overlap at most at an endpoint
    lengths = data.lengths("forget")
    blocks = [[j for s in shards for j in s[i][0]] for i in range(len(shards[0]))]
    for g in range(0, len(blocks) - 1, 2):
        spans = sorted(
            (min(lengths[j] for j in b), max(lengths[j] for j in b)) for b in blocks[g : g + 2]
        )
        assert spans[0][1] <= spans[1][0]
    retain = Counter(i for s in shards for _, r in s for i in r)
    assert sum(retain.values()) == world * len(shards[0]) * 4


def test_order_settings_name_what_determines_the_order():
    assert _data().order_settings()["group_size"] is None
    settings = _data(group_by_length=True, group_size=7).order_settings()
    assert settings == {
        "forget_size": 37,
        "retain_size": 53,
        "batch_size": 4,
        "retain_batch_size": None,
        "shuffle": True,
        "seed": 5,
        "group_by_length": True,
        "group_size": 7,
    }


def test_length_fn_and_bad_input():
    tensors = PairedData(
        [torch.zeros(k) for k in (5, 1, 3, 2)],
        [torch.zeros(k) for k in (4, 4)],
        batch_size=2,
        group_by_length=True,
        shuffle=False,
    )
    assert tensors.lengths("forget") == [5, 1, 3, 2]
    assert tensors.epoch_index_batches(0)[0][0] == [0, 2]  # the two longest first
    custom = _data(group_by_length=True, length_fn=lambda ex: int(ex["input_ids"][0]))
    assert custom.lengths("forget") == list(range(1, 38))
    with pytest.raises(ValueError, match="group_size"):
        _data(group_by_length=True, group_size=0)
    with pytest.raises(TypeError, match="group_by_length"):
        _data(group_by_length="yes")
    with pytest.raises(ValueError, match="length_fn"):
        _data(group_by_length=True, length_fn=lambda ex: -1).epoch_index_batches(0)
    no_ids = PairedData([{"x": 1}], [{"x": 2}], group_by_length=True)
    with pytest.raises(ValueError, match="length_fn"):
        no_ids.epoch_index_batches(0)
    with pytest.raises(ValueError, match="'forget' or 'retain'"):
        _data().lengths("holdout")
