"""Create the project's virtual environment and install the package into it (``make install``).

Run by the Makefile as ``python3 tools/bootstrap.py --venv .venv --extras test,docs``; it needs
only the Python standard library. Where torch comes from is decided once, by :func:`plan_torch`,
in this order:

1. A working torch already in the venv is kept, whatever its build (CPU, CUDA, ROCm, MPS). The
   project's pin is then not applied to it, so nothing is downgraded or replaced.
2. ``TORCH_INDEX`` (environment or ``--torch-index``) chooses explicitly: ``local`` (the local
   wheel, see 3), ``cpu`` (PyTorch's CPU wheel index), ``default`` (the platform's default from
   PyPI: a CUDA build on Linux x86_64, the Metal-enabled build on macOS) or an index URL such as
   ``https://download.pytorch.org/whl/cu128``.
3. A torch wheel in pip's ``find-links`` folders (``pip config get global.find-links`` or
   ``PIP_FIND_LINKS``) that matches the pin in ``constraints.txt``, this Python and this
   platform: that wheel, with ``constraints.txt`` (the build machine: ``torch==2.13.0+cpu``).
4. Linux without such a wheel: torch from PyTorch's CPU index,
   https://download.pytorch.org/whl/cpu (a few hundred MB instead of several GB of CUDA wheels).
5. macOS (and any other system): the platform default from PyPI.

The project is then installed editable with uv, which keeps the torch chosen above. Nothing here
refuses a torch build; the "must be the CPU build" check belongs to ``.ci/run`` alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CPU_INDEX",
    "TorchPlan",
    "find_links_dirs",
    "local_torch_wheels",
    "main",
    "plan_torch",
    "torch_pin",
    "wheel_matches",
]

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
"""PyTorch's own index of CPU-only wheels (Linux, Windows)."""

_CHOICES = ("local", "cpu", "default")


@dataclass(frozen=True)
class TorchPlan:
    """Where torch comes from, as uv arguments.

    Attributes:
        source: ``"existing"``, ``"local"``, ``"cpu"``, ``"default"`` or ``"index"``.
        reason: one line for the user, saying why.
        torch_args: arguments of a separate ``uv pip install`` of torch run before the project
            (``None``: torch is resolved together with the project).
        project_args: extra arguments of the project's ``uv pip install``.
        env: extra environment of both uv calls (``UV_FIND_LINKS`` for a local wheel).
    """

    source: str
    reason: str
    torch_args: tuple[str, ...] | None = None
    project_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


def torch_pin(constraints: str) -> str | None:
    """The version ``torch==V`` pins in the text of a constraints file (``None`` if none)."""
    for line in constraints.splitlines():
        match = re.match(r"^\s*torch\s*==\s*([^\s;#]+)", line)
        if match:
            return match[1]
    return None


def find_links_dirs(pip_config_value: str, environ: Mapping[str, str]) -> list[str]:
    """Local folders named by pip's ``find-links`` (config value and ``PIP_FIND_LINKS``).

    pip separates several locations by whitespace; ``file://`` URLs become paths; remote URLs
    are dropped (their contents cannot be listed here).
    """
    raw = f"{pip_config_value} {environ.get('PIP_FIND_LINKS', '')}".split()
    out: list[str] = []
    for item in raw:
        path = item.removeprefix("file://") if item.startswith("file://") else item
        if "://" in path:
            continue
        if path not in out:
            out.append(path)
    return out


def wheel_matches(
    filename: str, *, pin: str | None, python_tag: str, system: str, machine: str
) -> bool:
    """Whether ``filename`` is a torch wheel for ``pin``, this CPython tag and this platform.

    Args:
        filename: e.g. ``torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl``.
        pin: the wanted public version (``"2.13.0"``; a local label such as ``+cpu`` is
            ignored), or ``None`` for any version.
        python_tag: ``"cp311"``.
        system: ``platform.system()``: ``"Linux"``, ``"Darwin"``, ``"Windows"``.
        machine: ``platform.machine()``: ``"x86_64"``, ``"arm64"``, ``"aarch64"``, ``"AMD64"``.
    """
    if not filename.endswith(".whl"):
        return False
    parts = filename[: -len(".whl")].split("-")
    if len(parts) not in (5, 6) or parts[0].lower() != "torch":
        return False
    version, py, plat = parts[1], parts[-3], parts[-1]
    if pin is not None and version.split("+")[0] != pin.split("+")[0]:
        return False
    if python_tag not in py.split("."):
        return False
    families = {"Linux": ("linux",), "Darwin": ("macosx",), "Windows": ("win",)}
    if not any(family in plat for family in families.get(system, (system.lower(),))):
        return False
    arch = {"amd64": "amd64", "x86_64": "x86_64", "arm64": "arm64", "aarch64": "aarch64"}
    wanted = arch.get(machine.lower(), machine.lower())
    tags = plat.lower().split(".")
    return any(tag.endswith(wanted) or tag.endswith("universal2") for tag in tags)


def local_torch_wheels(
    dirs: Sequence[str], *, pin: str | None, python_tag: str, system: str, machine: str
) -> list[Path]:
    """Matching torch wheels (:func:`wheel_matches`) found in ``dirs``, sorted by path."""
    found: list[Path] = []
    for folder in dirs:
        try:
            entries = sorted(Path(folder).iterdir())
        except OSError:
            continue
        found.extend(
            p
            for p in entries
            if wheel_matches(p.name, pin=pin, python_tag=python_tag, system=system, machine=machine)
        )
    return found


def plan_torch(
    *,
    system: str,
    existing_torch: str | None,
    torch_index: str | None,
    local_wheels: Sequence[Path],
    find_links: Sequence[str],
    constraints_file: str,
) -> TorchPlan:
    """Decide where torch comes from (rules in the module docstring).

    Args:
        system: ``platform.system()``.
        existing_torch: ``torch.__version__`` of a torch that imports in the venv, else ``None``.
        torch_index: ``TORCH_INDEX``: ``"local"``, ``"cpu"``, ``"default"``, an index URL, or
            ``None``/empty for automatic.
        local_wheels: matching local wheels (:func:`local_torch_wheels`).
        find_links: pip's local find-links folders (handed to uv, which reads no pip config).
        constraints_file: path of the project's constraints file (the build machine's pin).

    Raises:
        ValueError: ``TORCH_INDEX`` is not one of the accepted values, or ``local`` is asked for
            where no local wheel matches.
    """
    links = {"UV_FIND_LINKS": " ".join(find_links)} if find_links else {}
    choice = (torch_index or "").strip()
    # an explicit choice replaces a torch already there (uv would keep one that satisfies)
    replace = ("--reinstall-package", "torch") if existing_torch is not None else ()
    pinned = ("--constraint", constraints_file, *replace)
    if existing_torch is not None and not choice:
        return TorchPlan(
            "existing",
            f"keeping the torch already installed in the venv ({existing_torch})",
            env=links,
        )
    if choice and choice not in _CHOICES and "://" not in choice:
        raise ValueError(
            f"TORCH_INDEX={choice!r} is not understood; use one of {list(_CHOICES)} or an index "
            "URL such as https://download.pytorch.org/whl/cu128 (empty: automatic)"
        )
    if choice == "local" or (not choice and local_wheels):
        if not local_wheels:
            raise ValueError(
                "TORCH_INDEX=local, but no torch wheel matching constraints.txt, this Python and "
                f"this platform is in pip's find-links folders {list(find_links)}; unset "
                "TORCH_INDEX for the automatic choice"
            )
        return TorchPlan(
            "local",
            f"local wheel {local_wheels[0].name} (pip find-links), pinned by {constraints_file}",
            project_args=pinned,
            env=links,
        )
    if choice == "cpu" or (not choice and system == "Linux"):
        return TorchPlan(
            "cpu",
            f"CPU build from PyTorch's index {CPU_INDEX} (set TORCH_INDEX for another build)",
            torch_args=(*replace, "--index-url", CPU_INDEX, "torch"),
            env=links,
        )
    if choice == "default" or not choice:
        return TorchPlan(
            "default",
            f"the default torch build for {system} from PyPI",
            torch_args=(*replace, "torch"),
            env=links,
        )
    return TorchPlan(
        "index",
        f"torch from the index {choice} (TORCH_INDEX)",
        torch_args=(*replace, "--index-url", choice, "torch"),
        env=links,
    )


def _run(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    shown = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    print("+", (shown + " " if shown else "") + shlex.join(cmd), flush=True)
    subprocess.run(list(cmd), check=True, env={**os.environ, **(env or {})})


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _existing_torch(python: Path) -> str | None:
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 and probe.stdout.strip() else None


def _pip_find_links() -> str:
    probe = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.find-links"],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=".venv", help="virtual environment folder (.venv)")
    parser.add_argument("--extras", default="test,docs", help="extras to install (test,docs)")
    parser.add_argument("--constraints", default="constraints.txt", help="(constraints.txt)")
    parser.add_argument(
        "--torch-index",
        default=os.environ.get("TORCH_INDEX", ""),
        help="local | cpu | default | an index URL (default: $TORCH_INDEX, else automatic)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the decision and the commands only"
    )
    args = parser.parse_args(argv)

    venv = Path(args.venv)
    python = _venv_python(venv)
    constraints = Path(args.constraints)
    pin = torch_pin(constraints.read_text(encoding="utf-8")) if constraints.exists() else None
    links = find_links_dirs(_pip_find_links(), os.environ)
    system, machine = platform.system(), platform.machine()
    python_tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = local_torch_wheels(
        links, pin=pin, python_tag=python_tag, system=system, machine=machine
    )
    try:
        plan = plan_torch(
            system=system,
            existing_torch=_existing_torch(python),
            torch_index=args.torch_index,
            local_wheels=wheels,
            find_links=links,
            constraints_file=str(constraints),
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"torch: {plan.reason}", flush=True)

    uv = [str(python), "-m", "uv", "pip", "install", "--python", str(python)]
    project = [*uv, *plan.project_args, "-e", f".[{args.extras}]" if args.extras else "."]
    steps: list[list[str]] = []
    if plan.torch_args is not None:
        steps.append([*uv, *plan.torch_args])
    steps.append(project)
    if args.dry_run:
        for step in steps:
            print("would run:", shlex.join(step))
        return 0

    if not python.exists():
        _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(python), "-m", "pip", "install", "--quiet", "uv"])
    for step in steps:
        _run(step, plan.env)
    _run([str(python), "-c", "import torch; print('installed torch', torch.__version__)"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
