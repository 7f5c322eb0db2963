"""Atomic, hash-keyed cache entries shared by mini-TOFU and mini-MUSE.

An entry ``<root>/<key>/`` is built in a sibling ``.tmp-<key>-<host>-<pid>-<random>`` folder and
renamed into place only when complete (its manifest written last), so a crash never leaves a
half entry that looks valid. Temporary folders of builds killed on this host are removed on the
next build; a concurrent build that finishes first wins and the loser's folder is discarded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
CACHE_ENV = "CONSTRAINED_UNLEARN_CACHE"


def cache_root(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where ``name``'s entries live: ``cache_dir`` if given, else
    ``$CONSTRAINED_UNLEARN_CACHE/<name>`` or ``~/.cache/constrained_unlearn/<name>``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    base = os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "constrained_unlearn")
    return Path(base).expanduser() / name


def cache_key(inputs: Mapping[str, Any]) -> str:
    """First 16 hex digits of SHA-256 of the canonical (sorted, compact) JSON of ``inputs``."""
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def write_manifest(folder: Path, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``fields`` plus the build environment (library versions, torch threads, time) as
    the entry's `MANIFEST`, which must be the last file of a build; return it."""
    import torch
    import transformers

    manifest = {
        **fields,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "torch_threads": torch.get_num_threads(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with open(folder / MANIFEST, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    return manifest


def _host() -> str:
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:32] or "host"


def remove_dead_tmp(root: Path, key: str) -> None:
    """Delete ``.tmp-<key>-<this host>-<pid>-*`` folders whose process no longer runs.

    A build killed by a signal cannot clean up after itself; its folder is recognised by the
    host name and process id in its name. Folders of other hosts (a shared cache) are left alone.
    """
    prefix = f".tmp-{key}-{_host()}-"
    for path in root.glob(prefix + "*"):
        pid_text = path.name[len(prefix) :].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # alive, owned by another user
            continue


def ensure_entry(
    root: Path, key: str, build: Callable[[Path], Any], *, force: bool = False
) -> tuple[Path, dict[str, Any], bool]:
    """Return ``(entry folder, manifest, cache_hit)``, building the entry with ``build(tmp)``.

    ``build`` must write a complete entry into the folder it is given, `MANIFEST` last.

    Raises:
        RuntimeError: the entry exists without a manifest (not written by this library).
    """
    entry = root / key
    if entry.exists() and not (entry / MANIFEST).is_file():
        raise RuntimeError(
            f"cache entry {entry} exists without {MANIFEST} (not written by this library or "
            "tampered with); delete the folder and build again"
        )
    hit = (entry / MANIFEST).is_file() and not force
    if not hit:
        root.mkdir(parents=True, exist_ok=True)
        remove_dead_tmp(root, key)
        tmp = root / f".tmp-{key}-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            build(tmp)
            if force and entry.exists():
                trash = root / f".tmp-old-{key}-{uuid.uuid4().hex[:8]}"
                os.rename(entry, trash)
                shutil.rmtree(trash, ignore_errors=True)
            try:
                os.rename(tmp, entry)
            except OSError:
                if not (entry / MANIFEST).is_file():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another process finished first
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    with open(entry / MANIFEST, encoding="utf-8") as f:
        return entry, json.load(f), hit


def load_cached_tokenizer(path: Path) -> Any:
    """The tokenizer saved in a cache entry (``PreTrainedTokenizerFast``)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def load_cached_model(path: Path) -> Any:
    """A causal LM saved in a cache entry (safetensors), in eval mode."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, use_safetensors=True).eval()
