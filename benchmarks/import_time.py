"""Start-up cost of the command line: ``import constrained_unlearn.cli.main`` beyond ``import torch``.

Each measurement is a fresh interpreter (so nothing is cached in ``sys.modules``); the median of
``--repeats`` runs is reported, because a shared machine is noisy. Also reports which heavy
dependencies a plain CLI import pulls in (none of ``mlflow``, ``datasets``, ``matplotlib``,
``scipy``, ``peft`` may) and the cost of ``constrained-unlearn --help``.

    python benchmarks/import_time.py --repeats 5
    python -X importtime -c "import constrained_unlearn.cli.main" 2> importtime.log

Target (issue #16): the CLI import costs ≤ 1 s beyond ``import torch``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

__all__ = ["HEAVY", "measure", "main"]

HEAVY = ("mlflow", "datasets", "matplotlib", "scipy", "peft", "transformers", "torch")
"""Modules whose presence after the CLI import is reported."""

_PROBE = """
import sys, time
{setup}
start = time.perf_counter()
{statement}
elapsed = time.perf_counter() - start
import json
print(json.dumps({{"s": elapsed, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def measure(statement: str, repeats: int, setup: str = "") -> tuple[float, list[float], list[str]]:
    """Median seconds of ``statement`` (after the untimed ``setup``) in fresh interpreters, all
    timings, and the heavy modules loaded at the end."""
    times, heavy = [], []
    for _ in range(repeats):
        code = _PROBE.format(setup=setup, statement=statement, heavy=HEAVY)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        record = json.loads(out.strip().splitlines()[-1])
        times.append(record["s"])
        heavy = record["heavy"]
    return statistics.median(times), times, heavy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per statement (median)")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    parser.add_argument("--no-torch", action="store_true", help="skip the rows that import torch")
    args = parser.parse_args(argv)
    rows = {  # name: (untimed setup, timed statement)
        "import constrained_unlearn.cli.main": ("", "import constrained_unlearn.cli.main"),
        "cli --help (parser built)": (
            "",
            "import constrained_unlearn.cli.main as m\nm.build_parser().format_help()",
        ),
    }
    if not args.no_torch:
        rows["import torch"] = ("", "import torch")
        rows["cli.main after torch"] = ("import torch", "import constrained_unlearn.cli.main")
    results: dict[str, object] = {}
    for name, (setup, statement) in rows.items():
        median, times, heavy = measure(statement, args.repeats, setup)
        results[name] = {"median_s": median, "times_s": times, "heavy_modules": heavy}
        print(f"{name:34s} median {median:7.3f} s  ({', '.join(f'{t:.2f}' for t in times)})")
        print(f"{'':34s} heavy modules loaded: {heavy or 'none'}")
    cli = results["import constrained_unlearn.cli.main"]
    print(f"cli.main import: {cli['median_s']:.3f} s (target: ≤ 1 s beyond import torch)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
