"""Paired forget/retain batches with a deterministic, resumable, shardable order.

Each epoch iterates the forget set once in a permutation drawn from ``(seed, epoch)``; every
forget batch is paired with a retain batch drawn from a seeded stream of retain permutations.
Both index streams are pure functions of ``(seed, epoch, rank, world_size)``, so a resumed run
re-creates the same order and skips the batches it already consumed, and every rank of a
distributed run gets a disjoint shard with the same number of batches (so the all-reduce of the
dual step never waits on a rank that ran out of data).

Length grouping (``group_by_length=True``) cuts padding: right-padded batches cost
``B · max_b T_b`` token positions for ``Σ_b T_b`` real ones. The epoch's index stream (the same
permutation as without grouping) is cut into *groups* of ``G = batch_size · world_size ·
group_size`` consecutive indices; each group is sorted by length (longest first, ties in stream
order) and cut into blocks of ``batch_size · world_size`` indices, one micro-batch per rank, and
with ``shuffle`` the blocks of a group are put in a seeded random order. The rank split
(``order[rank::world_size]``) is applied after grouping, so the shards stay disjoint and equal
in number, and every rank's batch ``i`` holds examples of similar length. The order is still a
pure function of ``(seed, epoch, rank, world_size)``: resuming at ``start`` re-creates it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

__all__ = ["PairedData"]


def _default_collate(examples: list[Any]) -> Any:
    return torch.utils.data.default_collate(examples)


@dataclass
class PairedData:
    """The data of an unlearning run.

    Attributes:
        forget: the forget set D_f (any map-style dataset).
        retain: the retain set D_r.
        batch_size: forget examples per micro-batch and process.
        retain_batch_size: retain examples per micro-batch (default: ``batch_size``).
        collate_fn: turns a list of examples into a batch (default: torch's default collate).
        retain_collate_fn: same for the retain set (default: ``collate_fn``).
        shuffle: draw a fresh forget permutation each epoch (retain is always drawn at random).
        seed: the seed of both index streams.
        group_by_length: sort each group of the index streams by length so that a batch holds
            examples of similar length (fewer padded positions; module docstring).
        group_size: micro-batches per rank in one sorted group (``G / (batch_size ·
            world_size)``); larger groups pad less and randomise less.
        length_fn: length of one example (default: ``len(example["input_ids"])`` for mappings,
            ``len(example)`` otherwise); called once per example, on first use.
    """

    forget: Dataset
    retain: Dataset
    batch_size: int = 8
    retain_batch_size: int | None = None
    collate_fn: Callable[[list[Any]], Any] | None = None
    retain_collate_fn: Callable[[list[Any]], Any] | None = None
    shuffle: bool = True
    seed: int = 0
    group_by_length: bool = False
    group_size: int = 50
    length_fn: Callable[[Any], int] | None = None

    def __post_init__(self) -> None:
        for name in ("forget", "retain"):
            size = len(getattr(self, name))  # type: ignore[arg-type]
            if size == 0:
                raise ValueError(
                    f"the {name} set is empty; unlearning needs at least one {name} example "
                    f"(check the split name and any filtering)"
                )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer ≥ 1, got {self.batch_size!r}")
        if self.retain_batch_size is not None and self.retain_batch_size < 1:
            raise ValueError(f"retain_batch_size must be ≥ 1, got {self.retain_batch_size!r}")
        if not isinstance(self.group_by_length, bool):
            raise TypeError(f"group_by_length must be True or False, got {self.group_by_length!r}")
        if (
            not isinstance(self.group_size, int)
            or isinstance(self.group_size, bool)
            or self.group_size < 1
        ):
            raise ValueError(
                f"group_size must be an integer ≥ 1 (micro-batches per sorted group), "
                f"got {self.group_size!r}"
            )
        self._lengths: dict[str, list[int]] = {}

    def order_settings(self) -> dict[str, Any]:
        """Everything besides the datasets' contents that determines the batch order.

        A checkpoint that stores these and compares them on resume refuses a run whose order
        would differ (``{"forget_size", "retain_size", "batch_size", "retain_batch_size",
        "shuffle", "seed", "group_by_length", "group_size"}``; ``group_size`` is ``None`` when
        grouping is off, where it has no effect).
        """
        return {
            "forget_size": len(self.forget),  # type: ignore[arg-type]
            "retain_size": len(self.retain),  # type: ignore[arg-type]
            "batch_size": self.batch_size,
            "retain_batch_size": self.retain_batch_size,
            "shuffle": self.shuffle,
            "seed": self.seed,
            "group_by_length": self.group_by_length,
            "group_size": self.group_size if self.group_by_length else None,
        }

    def lengths(self, which: str) -> list[int]:
        """Lengths of every example of ``which`` (``"forget"`` or ``"retain"``), computed once."""
        if which not in ("forget", "retain"):
            raise ValueError(f"which must be 'forget' or 'retain', got {which!r}")
        if which not in self._lengths:
            dataset = getattr(self, which)
            measure = self.length_fn or _default_length
            values = []
            for i in range(len(dataset)):  # type: ignore[arg-type]
                value = measure(dataset[i])
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(
                        f"length_fn returned {value!r} for {which} example {i}; it must return "
                        "the example's length as an integer ≥ 0"
                    )
                values.append(value)
            self._lengths[which] = values
        return self._lengths[which]

    def _grouped(
        self, order: list[int], which: str, batch_size: int, world_size: int, generator_seed: int
    ) -> list[int]:
        """``order`` with each group of ``G`` indices sorted by length, blocks shuffled."""
        if not self.group_by_length:
            return order
        lengths = self.lengths(which)
        block = batch_size * world_size
        group = block * self.group_size
        generator = torch.Generator().manual_seed(generator_seed)
        out: list[int] = []
        for g in range(0, len(order), group):
            members = order[g : g + group]
            # stable sort: equal lengths keep their (seeded) stream order
            members = sorted(members, key=lambda i: -lengths[i])
            blocks = [members[b : b + block] for b in range(0, len(members), block)]
            if self.shuffle and len(blocks) > 1:
                # the last block may be short: it stays last so every rank's share of the
                # group keeps the same number of full batches
                head = blocks[:-1] if len(blocks[-1]) < block else blocks
                tail = blocks[len(head) :]
                perm = torch.randperm(len(head), generator=generator).tolist()
                blocks = [head[p] for p in perm] + tail
            for chunk in blocks:
                out.extend(chunk)
        return out

    @property
    def _retain_bs(self) -> int:
        return self.retain_batch_size or self.batch_size

    def batches_per_epoch(self, world_size: int = 1) -> int:
        """Micro-batches per epoch on every rank (the forget set padded to a multiple of ranks)."""
        per_rank = math.ceil(len(self.forget) / world_size)  # type: ignore[arg-type]
        return math.ceil(per_rank / self.batch_size)

    def _forget_indices(self, epoch: int, rank: int, world_size: int) -> list[int]:
        n = len(self.forget)  # type: ignore[arg-type]
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=generator).tolist()
        else:
            order = list(range(n))
        total = math.ceil(n / world_size) * world_size
        order = order + order[: total - n]  # wrap around so every rank has as many examples
        order = self._grouped(
            order, "forget", self.batch_size, world_size, self.seed * 1_000_003 + 31 * epoch + 1
        )
        return order[rank::world_size]

    def _retain_indices(self, epoch: int, rank: int, world_size: int, count: int) -> list[int]:
        n = len(self.retain)  # type: ignore[arg-type]
        needed = count * world_size
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + 7_919 * (epoch + 1))
        stream: list[int] = []
        while len(stream) < needed:
            stream.extend(torch.randperm(n, generator=generator).tolist())
        stream = self._grouped(
            stream[:needed],
            "retain",
            self._retain_bs,
            world_size,
            self.seed * 1_000_003 + 31 * epoch + 2,
        )
        return stream[rank::world_size]

    def epoch_index_batches(
        self, epoch: int, rank: int = 0, world_size: int = 1
    ) -> list[tuple[list[int], list[int]]]:
        """``[(forget indices, retain indices)]`` of one epoch on one rank."""
        forget = self._forget_indices(epoch, rank, world_size)
        batches = [forget[i : i + self.batch_size] for i in range(0, len(forget), self.batch_size)]
        retain = self._retain_indices(epoch, rank, world_size, len(batches) * self._retain_bs)
        rb = self._retain_bs
        return [(fb, retain[i * rb : (i + 1) * rb]) for i, fb in enumerate(batches)]

    def iter_epoch(
        self, epoch: int, rank: int = 0, world_size: int = 1, start: int = 0
    ) -> Iterator[tuple[Any, Any]]:
        """Collated ``(forget_batch, retain_batch)`` pairs, skipping the first ``start``."""
        collate = self.collate_fn or _default_collate
        retain_collate = self.retain_collate_fn or collate
        for forget_idx, retain_idx in self.epoch_index_batches(epoch, rank, world_size)[start:]:
            yield (
                collate(_take(self.forget, forget_idx)),
                retain_collate(_take(self.retain, retain_idx)),
            )


def _default_length(example: Any) -> int:
    if isinstance(example, Mapping):
        if "input_ids" not in example:
            raise ValueError(
                f"cannot measure an example with keys {sorted(example)} (no 'input_ids'); "
                "pass PairedData(length_fn=...) to group by length"
            )
        return len(example["input_ids"])
    return len(example)


def _take(dataset: Dataset, indices: Sequence[int]) -> list[Any]:
    return [dataset[i] for i in indices]
