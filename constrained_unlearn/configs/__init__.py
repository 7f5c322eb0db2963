"""Run configurations shipped with the package (YAML), found by name.

Names are file paths relative to this folder without ``.yaml``: ``tofu_llama32_1b_pdu``,
``muse_news_pdu``, ``accelerate/fsdp`` … ``constrained-unlearn configs list`` shows them and
``constrained-unlearn configs copy NAME`` writes one to the working folder to edit.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

__all__ = ["available_configs", "bundled_config_path", "resolve_config"]

_SUFFIX = ".yaml"


def _root() -> Path:
    return Path(str(resources.files(__name__)))


def available_configs() -> dict[str, Path]:
    """``{name: path}`` of every bundled config, sorted by name."""
    root = _root()
    found = {
        path.relative_to(root).with_suffix("").as_posix(): path
        for path in root.rglob(f"*{_SUFFIX}")
    }
    return dict(sorted(found.items()))


def bundled_config_path(name: str) -> Path:
    """The path of the bundled config ``name`` (with or without ``.yaml``).

    Raises:
        ValueError: no bundled config of that name (the message lists them and the nearest).
    """
    configs = available_configs()
    key = name[: -len(_SUFFIX)] if name.endswith(_SUFFIX) else name
    if key in configs:
        return configs[key]
    near = difflib.get_close_matches(key, list(configs), n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise ValueError(
        f"no bundled config named {name!r}.{hint} Bundled: {list(configs)} "
        "(`constrained-unlearn configs list`); or pass the path of a YAML file"
    )


def resolve_config(name_or_path: str | Path) -> Path:
    """A YAML file's path: ``name_or_path`` itself if it is a file, else the bundled config.

    Raises:
        ValueError: neither an existing file nor a bundled config name.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.suffix not in ("", _SUFFIX) or path.is_absolute():
        raise ValueError(f"config file {str(name_or_path)!r} does not exist")
    try:
        return bundled_config_path(str(name_or_path))
    except ValueError as err:
        raise ValueError(
            f"{str(name_or_path)!r} is neither an existing file nor a bundled config: {err}"
        ) from None
