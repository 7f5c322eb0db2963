"""Build (or fetch from the cache) a complete mini-MUSE: data, tokenizer, target and retrained model.

Cache
    ``<root>/<key>/`` where ``root`` is ``cache_dir`` if given, else
    ``$CONSTRAINED_UNLEARN_CACHE/minimuse`` if that variable is set, else
    ``~/.cache/constrained_unlearn/minimuse``. ``key`` is mini-TOFU's
    `cache_key` (first 16 hex digits of the
    SHA-256 of the canonical JSON) of `cache_key_inputs`: generator version, seed, size,
    vocabulary size, model spec, training settings and question-block size. The thread count is
    not part of the key (it can change the last bits of the weights).

    An entry is written into a sibling ``.tmp-*`` folder and renamed into place when complete
    (``manifest.json`` written last), so an interrupted build never leaves a half entry; two
    processes building the same entry both finish and the first rename wins.

Layout of an entry::

    data/<config>/<split>.jsonl   every MUSE config (``load_muse(config, split, data/)``) and
                                  ``train_qa`` (the knowledge pairs both models trained on)
    data/documents.jsonl          every document with its kind, facts and questions
    tokenizer/                    the trained tokenizer
    target/                       trained on ``train`` (folds 1-4, retain1, retain2) + their QA
    retrain/                      trained on retain1 + retain2 + their QA (never saw a fold)
    manifest.json                 key inputs, row counts, timings, training losses, versions
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from constrained_unlearn.benchmarks._cache import (
    cache_key,
    cache_root,
    ensure_entry,
    load_cached_model,
    load_cached_tokenizer,
    write_manifest,
)
from constrained_unlearn.benchmarks.minimuse.generator import (
    GENERATOR_VERSION,
    MiniMuseSize,
    generate_documents,
    generate_minimuse,
    resolve_size,
)
from constrained_unlearn.benchmarks.minimuse.train import qa_pairs_of, train_corpus_model
from constrained_unlearn.benchmarks.minitofu.finetune import TrainSettings
from constrained_unlearn.benchmarks.minitofu.model import ModelSpec, make_model
from constrained_unlearn.benchmarks.minitofu.tokenizer import iter_text, train_tokenizer
from constrained_unlearn.benchmarks.muse import load_muse
from constrained_unlearn.numerics import describe_cpu_numerics

__all__ = [
    "EVAL_CONFIGS",
    "PRESETS",
    "TRAINED_SPLITS",
    "MiniMuse",
    "Recipe",
    "build_minimuse",
    "cache_key_inputs",
    "default_cache_root",
    "muse_eval_data",
    "write_minimuse_data",
]

logger = logging.getLogger(__name__)

TRAINED_SPLITS: dict[str, tuple[str, ...]] = {
    "target": ("forget", "retain1", "retain2"),
    "retrain": ("retain1", "retain2"),
}
"""The ``train`` / ``train_qa`` splits each model is trained on."""

EVAL_CONFIGS: tuple[str, ...] = ("verbmem", "knowmem", "privleak")


@dataclass(frozen=True)
class Recipe:
    """Everything besides the seed that determines a mini-MUSE build.

    Attributes:
        size: document counts.
        model: architecture (its ``max_position_embeddings`` bounds every training sequence
            and must hold KnowMem's few-shot prompt plus 32 new tokens).
        train: optimisation settings of both models.
        vocab_size: upper bound of the BPE vocabulary.
        qa_block_max: most question-answer pairs per training block.
    """

    size: MiniMuseSize
    model: ModelSpec = field(
        default_factory=lambda: ModelSpec(
            hidden_size=128,
            intermediate_size=512,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=256,
        )
    )
    train: TrainSettings = field(
        default_factory=lambda: TrainSettings(epochs=60, learning_rate=3e-3, batch_size=16)
    )
    vocab_size: int = 2048
    qa_block_max: int = 11


PRESETS: dict[str, Recipe] = {
    # Seconds: plumbing tests. A 1-layer, 32-wide model; it does not memorise.
    "tiny": Recipe(
        size=resolve_size("tiny"),
        model=ModelSpec(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=256,
        ),
        train=TrainSettings(epochs=2, batch_size=16),
        vocab_size=512,
        qa_block_max=4,
    ),
    # The demo: a ≈0.8M-parameter model that memorises 160 news documents and 640 QA pairs.
    "default": Recipe(size=resolve_size("default")),
}
"""Named recipes. ``build_minimuse(size=...)`` takes one of these names."""


def default_cache_root() -> Path:
    """``$CONSTRAINED_UNLEARN_CACHE/minimuse`` or ``~/.cache/constrained_unlearn/minimuse``."""
    return cache_root("minimuse")


def cache_key_inputs(seed: int, recipe: Recipe) -> dict[str, Any]:
    """The JSON-able description of a build that the cache key hashes."""
    return {
        "benchmark": "minimuse",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "size": recipe.size.as_dict(),
        "vocab_size": recipe.vocab_size,
        "model": recipe.model.as_dict(),
        "train": recipe.train.as_dict(),
        "qa_block_max": recipe.qa_block_max,
        # the kernels decide the floats of a 1,000-step training run (constrained_unlearn.numerics)
        "numerics": describe_cpu_numerics(),
    }


@dataclass
class MiniMuse:
    """A built mini-MUSE.

    Attributes:
        root: the cache entry folder.
        key: its cache key.
        data_dir: the MUSE-layout folder; pass it as ``source`` to
            [`load_muse`][constrained_unlearn.benchmarks.load_muse].
        tokenizer_path, target_path, retrain_path: ``from_pretrained`` folders (the model
            folders hold the tokenizer too).
        manifest: the entry's ``manifest.json``.
        cache_hit: whether this call found the entry instead of building it.
    """

    root: Path
    key: str
    data_dir: Path
    tokenizer_path: Path
    target_path: Path
    retrain_path: Path
    manifest: dict[str, Any]
    cache_hit: bool

    def load(self, config: str, split: str) -> datasets.Dataset:
        """One split through [`load_muse`][constrained_unlearn.benchmarks.load_muse]."""
        return load_muse(config, split, self.data_dir)

    def eval_data(self) -> dict[str, datasets.Dataset]:
        """``{"config/split": rows}`` of ``verbmem``, ``knowmem`` and ``privleak`` (the input of
        [`MuseEvaluator`][constrained_unlearn.evaluation.MuseEvaluator])."""
        return muse_eval_data(self.data_dir)

    def load_tokenizer(self) -> Any:
        return load_cached_tokenizer(self.tokenizer_path)

    def load_target(self) -> Any:
        """The target model (trained on every fold and both retain splits), in eval mode."""
        return load_cached_model(self.target_path)

    def load_retrain(self) -> Any:
        """The retrained model (never saw a forget fold), in eval mode."""
        return load_cached_model(self.retrain_path)


def muse_eval_data(source: str | os.PathLike) -> dict[str, datasets.Dataset]:
    """``{"config/split": rows}`` of MUSE's evaluation configs from a hub id or folder."""
    from constrained_unlearn.benchmarks.muse import MUSE_SPLITS

    return {
        f"{config}/{split}": load_muse(config, split, source)
        for config in EVAL_CONFIGS
        for split in MUSE_SPLITS[config]
    }


def _resolve_recipe(size: str | MiniMuseSize | Recipe) -> tuple[str, Recipe]:
    if isinstance(size, Recipe):
        return "custom", size
    if isinstance(size, MiniMuseSize):
        return "custom", Recipe(size=size)
    if isinstance(size, str) and size in PRESETS:
        return size, PRESETS[size]
    raise ValueError(
        f"unknown mini-MUSE size {size!r}; use one of {sorted(PRESETS)}, a MiniMuseSize or a Recipe"
    )


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_minimuse_data(seed: int, size: str | MiniMuseSize, folder: str | os.PathLike) -> Path:
    """Write every config of mini-MUSE into ``folder`` (MUSE's local layout); returns it."""
    folder = Path(folder)
    for config, splits in generate_minimuse(seed, size).items():
        for split, rows in splits.items():
            _write_jsonl(folder / config / f"{split}.jsonl", rows)
    _write_jsonl(folder / "documents.jsonl", [d.as_dict() for d in generate_documents(seed, size)])
    return folder


def _build_entry(tmp: Path, seed: int, recipe: Recipe, progress: bool) -> dict[str, Any]:
    """Write a complete entry into ``tmp``; returns the manifest (written last)."""

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    data = generate_minimuse(seed, recipe.size)
    write_minimuse_data(seed, recipe.size, tmp / "data")
    timings["data_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    documents = generate_documents(seed, recipe.size)
    text_sources = {
        "documents": [{"text": d.text} for d in documents],
        "questions": [{"question": q, "answer": a} for d in documents for q, a in d.qa],
    }
    tokenizer = train_tokenizer(iter_text(text_sources), vocab_size=recipe.vocab_size)
    tokenizer.save_pretrained(tmp / "tokenizer")
    timings["tokenizer_s"] = time.perf_counter() - t0

    logs: dict[str, Any] = {}
    parameters = 0
    for which, splits in TRAINED_SPLITS.items():
        t0 = time.perf_counter()
        model = make_model(recipe.model, tokenizer, seed)
        parameters = sum(p.numel() for p in model.parameters())
        docs = [str(r["text"]) for s in splits for r in data["train"][s]]
        pairs = [p for s in splits for p in qa_pairs_of(data["train_qa"][s])]
        log = train_corpus_model(
            model,
            docs,
            pairs,
            tokenizer,
            recipe.train,
            max_length=recipe.model.max_position_embeddings,
            qa_block_max=recipe.qa_block_max,
            seed=seed,
            progress=progress,
            desc=f"mini-MUSE {which} model",
        )
        timings[f"{which}_train_s"] = time.perf_counter() - t0
        logs[which] = {
            "epoch_losses": log.epoch_losses,
            "steps": log.steps,
            "documents": len(docs),
            "qa_pairs": len(pairs),
            "splits": list(splits),
        }
        model.save_pretrained(tmp / which)
        tokenizer.save_pretrained(tmp / which)
        del model

    return write_manifest(
        tmp,
        {
            "inputs": cache_key_inputs(seed, recipe),
            "rows": {c: {s: len(rows) for s, rows in splits.items()} for c, splits in data.items()},
            "vocab_size_trained": len(tokenizer),
            "parameters": parameters,
            "timings": timings,
            "training": logs,
        },
    )


def build_minimuse(
    seed: int = 0,
    size: str | MiniMuseSize | Recipe = "default",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    *,
    force: bool = False,
) -> MiniMuse:
    """Build mini-MUSE, or return the cached build with the same inputs.

    Args:
        seed: determines events, wordings, splits, initialisation and shuffling.
        size: a preset name from `PRESETS` (``"tiny"`` for tests, ``"default"`` for the
            demo), a `MiniMuseSize` (default model and training) or a full
            `Recipe`.
        cache_dir: cache root (module docstring).
        progress: tqdm bars while training.
        force: rebuild even if the entry exists (the old entry is replaced atomically).

    Returns:
        A [`MiniMuse`][constrained_unlearn.benchmarks.MiniMuse].
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    preset, recipe = _resolve_recipe(size)
    root = cache_root("minimuse", cache_dir)
    key = cache_key(cache_key_inputs(seed, recipe))

    def build(tmp: Path) -> None:
        logger.info("building mini-MUSE %s (preset %s, seed %d) in %s", key, preset, seed, tmp)
        _build_entry(tmp, seed, recipe, progress)

    entry, manifest, hit = ensure_entry(root, key, build, force=force)
    return MiniMuse(
        root=entry,
        key=key,
        data_dir=entry / "data",
        tokenizer_path=entry / "tokenizer",
        target_path=entry / "target",
        retrain_path=entry / "retrain",
        manifest=manifest,
        cache_hit=hit,
    )
