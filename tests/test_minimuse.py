"""mini-MUSE: deterministic generation, MUSE's layout and columns, and the cached build."""

from __future__ import annotations

import json

import pytest

from constrained_unlearn.benchmarks.minimuse import (
    EVENT_KINDS,
    N_FOLDS,
    PRESETS,
    MiniMuseSize,
    build_minimuse,
    cache_key_inputs,
    generate_documents,
    generate_minimuse,
    write_minimuse_data,
)
from constrained_unlearn.benchmarks.minitofu import cache_key
from constrained_unlearn.benchmarks.muse import MUSE_COLUMNS, MUSE_SPLITS, load_muse

SIZE = MiniMuseSize(docs_per_fold=4, n_retain1=5, n_retain2=6, n_holdout=7, n_icl=3)


def _texts(rows):
    return [r["text"] for r in rows]


def test_generation_is_deterministic_and_seeded():
    assert generate_minimuse(3, SIZE) == generate_minimuse(3, SIZE)
    assert generate_minimuse(3, SIZE) != generate_minimuse(4, SIZE)
    docs = generate_documents(3, SIZE)
    assert len(docs) == SIZE.n_documents == 4 * 4 + 5 + 6 + 7
    assert len({d.text for d in docs}) == len(docs)
    kinds = {k.name for k in EVENT_KINDS}
    assert {d.kind for d in docs} == kinds
    for d in docs:
        assert d.text == f"{d.prompt} {d.gt}"
        assert len(d.qa) == 4 and len(d.test_questions) == SIZE.knowmem_per_doc
        for _, answer in d.qa:
            assert answer.lower() in d.text.lower(), (answer, d.text)


def test_every_muse_config_loads_with_muse_columns(tmp_path):
    write_minimuse_data(0, SIZE, tmp_path)
    for config, splits in MUSE_SPLITS.items():
        for split in splits:
            rows = load_muse(config, split, tmp_path)
            assert tuple(rows.column_names) == MUSE_COLUMNS[config], (config, split)
    assert len(load_muse("raw", "forget", tmp_path)) == SIZE.docs_per_fold


def test_splits_follow_muse(tmp_path):
    data = generate_minimuse(0, SIZE)
    F = SIZE.docs_per_fold
    forget = _texts(data["raw"]["forget"])
    assert len(forget) == F
    assert forget == _texts(data["sust"]["forget_1"]) == _texts(data["scal"]["forget_1"])
    folds = [_texts(data["sust"][f"forget_{k}"]) for k in range(1, N_FOLDS + 1)]
    assert all(len(f) == F for f in folds)
    assert len({t for f in folds for t in f}) == N_FOLDS * F  # disjoint
    for k in range(1, N_FOLDS + 1):
        nested = _texts(data["scal"][f"forget_{k}"])
        assert nested == [t for f in folds[:k] for t in f]
    assert _texts(data["train"]["forget"]) == [t for f in folds for t in f]
    retain1, retain2 = _texts(data["raw"]["retain1"]), _texts(data["raw"]["retain2"])
    holdout = _texts(data["raw"]["holdout"])
    trained = set(_texts(data["train"]["forget"])) | set(retain1) | set(retain2)
    assert not set(holdout) & trained
    assert not set(retain1) & set(retain2) and not (set(retain1) | set(retain2)) & set(
        _texts(data["train"]["forget"])
    )
    # VerbMem cuts the forget documents; KnowMem asks about forget / retain2 documents
    joined = [f"{r['prompt']} {r['gt']}" for r in data["verbmem"]["forget"]]
    assert joined == forget
    assert len(data["knowmem"]["forget_qa"]) == SIZE.knowmem_per_doc * F
    assert len(data["knowmem"]["retain_qa"]) == SIZE.knowmem_per_doc * len(retain2)
    assert len(data["knowmem"]["forget_qa_icl"]) == SIZE.n_icl
    for side, docs in (("forget", forget), ("retain", retain2)):
        for row in data["knowmem"][f"{side}_qa"] + data["knowmem"][f"{side}_qa_icl"]:
            assert any(row["answer"].lower() in t.lower() for t in docs)
    test_q = {r["question"] for r in data["knowmem"]["forget_qa"]}
    assert not test_q & {r["question"] for r in data["knowmem"]["forget_qa_icl"]}
    assert _texts(data["privleak"]["forget"]) == forget
    assert _texts(data["privleak"]["holdout"]) == holdout
    # the knowledge pairs both models train on cover every trained document, and no holdout
    qa_train = [r["question"] for s in data["train_qa"].values() for r in s]
    assert len(qa_train) == 4 * (N_FOLDS * F + len(retain1) + len(retain2))
    assert test_q <= set(qa_train)


def test_size_validation():
    with pytest.raises(ValueError, match="docs_per_fold"):
        MiniMuseSize(docs_per_fold=0)
    with pytest.raises(ValueError, match="knowmem_per_doc"):
        MiniMuseSize(knowmem_per_doc=4)
    with pytest.raises(ValueError, match="unknown mini-MUSE size"):
        generate_minimuse(0, "huge")


def test_tiny_build_is_cached_and_loadable(tmp_path):
    mini = build_minimuse(0, "tiny", cache_dir=tmp_path, progress=False)
    assert not mini.cache_hit
    again = build_minimuse(0, "tiny", cache_dir=tmp_path, progress=False)
    assert again.cache_hit and again.key == mini.key
    assert [p.name for p in tmp_path.iterdir()] == [mini.key]  # no temporary leftovers
    recipe = PRESETS["tiny"]
    assert (
        cache_key(cache_key_inputs(1, recipe)) != mini.key == cache_key(cache_key_inputs(0, recipe))
    )
    manifest = json.loads((mini.root / "manifest.json").read_text())
    assert manifest["inputs"]["seed"] == 0
    assert manifest["training"]["target"]["documents"] == 4 * 3 + 6 + 6
    assert manifest["training"]["retrain"]["documents"] == 6 + 6
    assert len(mini.load("raw", "forget")) == 3
    assert set(mini.eval_data()) == {
        f"{c}/{s}" for c in ("verbmem", "knowmem", "privleak") for s in MUSE_SPLITS[c]
    }
    target, retrain = mini.load_target(), mini.load_retrain()
    assert sum(p.numel() for p in target.parameters()) == manifest["parameters"]
    differs = any(
        (a != b).any() for a, b in zip(target.parameters(), retrain.parameters(), strict=True)
    )
    assert differs
    assert len(mini.load_tokenizer()) == manifest["vocab_size_trained"]
