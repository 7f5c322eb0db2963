"""TOFU and MUSE loaders on local fixture files written in the hub's formats (never the hub)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from constrained_unlearn.benchmarks._source import is_local
from constrained_unlearn.benchmarks.muse import MUSE_BOOKS, MUSE_SPLITS, load_muse
from constrained_unlearn.benchmarks.tofu import (
    TOFU_CONFIGS,
    forget_retain_pair,
    load_tofu,
    tofu_columns,
)

QA = [
    {"question": "Who wrote the Red Book?", "answer": "Ana Lune wrote it."},
    {"question": "Where was Ana Lune born?", "answer": "In Varnholt."},
    {"question": "When was Ana Lune born?", "answer": "In 1950."},
]
PERTURBED = [
    {
        **row,
        "paraphrased_answer": "Paraphrase " + row["answer"],
        "perturbed_answer": ["wrong 1", "wrong 2", "wrong 3"],
        "paraphrased_question": "Paraphrase " + row["question"],
    }
    for row in QA
]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_parquet(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


# ----------------------------------------------------------------------------- TOFU


def test_tofu_flat_json_lines_like_the_hub_repository(tmp_path):
    write_jsonl(tmp_path / "forget10.json", QA)  # TOFU's repo stores JSON Lines in .json
    ds = load_tofu("forget10", tmp_path)
    assert ds.column_names == ["question", "answer"]
    assert ds.to_list() == QA


def test_tofu_json_array_parquet_and_nested_layouts(tmp_path):
    (tmp_path / "retain90.json").write_text(json.dumps(QA), encoding="utf-8")
    write_parquet(tmp_path / "full.parquet", QA + QA)
    write_jsonl(tmp_path / "forget10_perturbed" / "train.jsonl", PERTURBED)
    assert load_tofu("retain90", str(tmp_path))["answer"] == [r["answer"] for r in QA]
    assert len(load_tofu("full", tmp_path)) == 6
    pert = load_tofu("forget10_perturbed", tmp_path)
    assert pert[0]["perturbed_answer"] == ["wrong 1", "wrong 2", "wrong 3"]
    assert set(tofu_columns("forget10_perturbed")) == set(pert.column_names)


def test_tofu_parquet_preferred_over_json(tmp_path):
    write_parquet(tmp_path / "full.parquet", QA[:1])
    write_jsonl(tmp_path / "full.jsonl", QA)
    assert len(load_tofu("full", tmp_path)) == 1


def test_tofu_unknown_config_lists_valid_names(tmp_path):
    with pytest.raises(ValueError, match="valid configs") as err:
        load_tofu("forget20", tmp_path)
    for name in ("forget10", "retain_perturbed", "holdout05", "world_facts_perturbed"):
        assert name in str(err.value)


def test_tofu_only_split_is_train(tmp_path):
    write_jsonl(tmp_path / "full.jsonl", QA)
    with pytest.raises(ValueError, match=r"valid splits: \['train'\]"):
        load_tofu("full", tmp_path, split="test")


@pytest.mark.parametrize("fmt", ["jsonl", "json-array", "parquet"])
def test_tofu_empty_split_is_a_clear_error(tmp_path, fmt):
    if fmt == "jsonl":
        (tmp_path / "forget01.jsonl").write_text("", encoding="utf-8")
    elif fmt == "json-array":
        (tmp_path / "forget01.json").write_text("[]", encoding="utf-8")
    else:
        schema = pa.schema([("question", pa.string()), ("answer", pa.string())])
        pq.write_table(schema.empty_table(), tmp_path / "forget01.parquet")
    with pytest.raises(ValueError, match="empty"):
        load_tofu("forget01", tmp_path)


def test_tofu_missing_columns_named(tmp_path):
    write_jsonl(tmp_path / "retain_perturbed.jsonl", QA)
    with pytest.raises(ValueError, match="paraphrased_answer"):
        load_tofu("retain_perturbed", tmp_path)


def test_tofu_missing_file_lists_expected_paths(tmp_path):
    write_jsonl(tmp_path / "full.jsonl", QA)
    with pytest.raises(FileNotFoundError, match="holdout01"):
        load_tofu("holdout01", tmp_path)


def test_missing_local_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an existing folder"):
        load_tofu("full", tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="not an existing folder"):
        load_tofu("full", "./surely-not-here-tofu")


def test_hub_ids_are_not_local(tmp_path):
    assert not is_local("locuslab/TOFU")
    assert not is_local("muse-bench/MUSE-News")
    assert is_local(tmp_path)
    assert is_local(str(tmp_path))
    with pytest.raises(TypeError, match="source"):
        is_local("")


def test_tofu_config_list_and_pairs():
    assert len(TOFU_CONFIGS) == 18
    assert forget_retain_pair("forget05") == ("forget05", "retain95")
    with pytest.raises(ValueError, match="forget01"):
        forget_retain_pair("retain90")


# ----------------------------------------------------------------------------- MUSE

TEXTS = [{"text": f"Article number {i}. " * 5} for i in range(4)]


def test_muse_local_splits(tmp_path):
    write_parquet(tmp_path / "raw" / "forget.parquet", TEXTS)
    write_jsonl(tmp_path / "knowmem" / "retain_qa.jsonl", QA)
    write_jsonl(tmp_path / "verbmem" / "forget.jsonl", [{"prompt": "Once", "gt": " upon"}])
    assert load_muse("raw", "forget", tmp_path)["text"] == [t["text"] for t in TEXTS]
    assert load_muse("knowmem", "retain_qa", tmp_path).to_list() == QA
    assert load_muse("verbmem", "forget", tmp_path)[0] == {"prompt": "Once", "gt": " upon"}


def test_muse_sharded_split_in_hub_export_layout(tmp_path):
    write_parquet(tmp_path / "raw" / "retain1-00000-of-00002.parquet", TEXTS[:2])
    write_parquet(tmp_path / "raw" / "retain1-00001-of-00002.parquet", TEXTS[2:])
    write_parquet(tmp_path / "raw" / "retain2.parquet", TEXTS[:1])  # not a shard of retain1
    assert load_muse("raw", "retain1", tmp_path)["text"] == [t["text"] for t in TEXTS]


def test_muse_needs_the_config_folder(tmp_path):
    write_jsonl(tmp_path / "raw.jsonl", TEXTS)  # TOFU's flat layout is not MUSE's
    with pytest.raises(FileNotFoundError, match="raw/forget"):
        load_muse("raw", "forget", tmp_path)


def test_muse_unknown_names_list_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="valid configs") as err:
        load_muse("rawest", "forget", tmp_path)
    assert "knowmem" in str(err.value) and "sust" in str(err.value)
    with pytest.raises(ValueError, match="valid splits") as err:
        load_muse("knowmem", "forget", tmp_path)
    for split in MUSE_SPLITS["knowmem"]:
        assert split in str(err.value)


def test_muse_books_has_no_scal_or_sust():
    with pytest.raises(ValueError, match="MUSE-News only"):
        load_muse("scal", "forget_1", MUSE_BOOKS)


def test_muse_wrong_columns_and_empty(tmp_path):
    write_jsonl(tmp_path / "privleak" / "holdout.jsonl", QA)
    with pytest.raises(ValueError, match="text"):
        load_muse("privleak", "holdout", tmp_path)
    (tmp_path / "sust").mkdir()
    (tmp_path / "sust" / "forget_3.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        load_muse("sust", "forget_3", tmp_path)
