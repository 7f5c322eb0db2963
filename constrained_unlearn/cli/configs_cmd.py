"""``constrained-unlearn configs list|show|copy|path NAME``: the run configs shipped with the
package (`constrained_unlearn.configs`), in the spirit of ``tune ls`` / ``tune cp``."""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["describe_config", "run_configs"]


def describe_config(path: Path) -> str:
    """The first comment line of a config file (its one-line description), or ``""``."""
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text.startswith("#"):
            return text.lstrip("#").strip()
        if text:
            break
    return ""


def run_configs(
    action: str, name: str | None, *, dest: str | None = None, force: bool = False
) -> int:
    """Do ``action`` (``list``, ``show``, ``copy``, ``path``) for the bundled config ``name``.

    Raises:
        ValueError: a missing or unknown name (the message lists the bundled ones), or ``copy``
            onto an existing file without ``force``.
    """
    from constrained_unlearn.configs import available_configs, bundled_config_path

    if action == "list":
        configs = available_configs()
        width = max((len(n) for n in configs), default=0)
        for config, path in configs.items():
            print(f"{config:{width}s}  {describe_config(path)}".rstrip())
        return 0
    if not name:
        raise ValueError(
            f"`configs {action}` needs a config name, e.g. `constrained-unlearn configs {action} "
            f"{next(iter(available_configs()), 'NAME')}`; `configs list` shows them"
        )
    path = bundled_config_path(name)
    if action == "path":
        print(path)
    elif action == "show":
        print(path.read_text(encoding="utf-8"), end="")
    elif action == "copy":
        target = Path(dest) if dest else Path.cwd() / path.name
        if target.is_dir():
            target = target / path.name
        if target.exists() and not force:
            raise FileExistsError(
                f"{target} already exists; pass --force to overwrite it, or give another "
                "destination: constrained-unlearn configs copy NAME DEST"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        print(
            f"copied {name} to {target}; run it with: constrained-unlearn unlearn --config {target}"
        )
    else:  # argparse restricts the choices
        raise ValueError(f"unknown configs action {action!r}; use list, show, copy or path")
    return 0
