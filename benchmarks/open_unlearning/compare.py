"""Side by side: open-unlearning's TOFU or MUSE summary against this library's, metric by metric.

    python benchmarks/open_unlearning/compare.py OU_DIR OURS_DIR [--tolerance 1e-5]

Both folders hold the same ``TOFU_SUMMARY.json`` or ``MUSE_SUMMARY.json`` (open-unlearning's
``eval.sh`` / ``muse_eval.sh`` output; ours from ``constrained-unlearn eval`` with
``--tokenization joint``, the open-unlearning convention, or a mini-MUSE build's ``evals/``).
Prints one row per metric open-unlearning reports, with |Δ|, and exits 1 when a metric is
missing on our side or differs by more than the tolerance.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

SUMMARIES = ("TOFU_SUMMARY.json", "MUSE_SUMMARY.json")


def rows(ou: dict[str, float], ours: dict[str, object]) -> list[tuple[str, float, float | None]]:
    """``(metric, open-unlearning's value, ours or None)`` for every metric open-unlearning
    reports, in its order."""
    out = []
    for name, value in ou.items():
        mine = ours.get(name)
        out.append((name, float(value), float(mine) if isinstance(mine, (int, float)) else None))
    return out


def differs(ou_value: float, mine: float | None, tolerance: float) -> bool:
    """Whether our value is missing or further than ``tolerance`` from open-unlearning's
    (absolute; relative for magnitudes above 1, e.g. privleak in percent)."""
    if mine is None:
        return True
    if math.isnan(ou_value) or math.isnan(mine):
        return not (math.isnan(ou_value) and math.isnan(mine))
    return abs(ou_value - mine) > tolerance * max(1.0, abs(ou_value))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ou_dir", type=Path)
    parser.add_argument("ours_dir", type=Path)
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args(argv)
    names = [n for n in SUMMARIES if (args.ou_dir / n).is_file()]
    if not names:
        parser.error(f"{args.ou_dir} holds neither {' nor '.join(SUMMARIES)}")
    ou = json.loads((args.ou_dir / names[0]).read_text())
    ours = json.loads((args.ours_dir / names[0]).read_text())
    bad = 0
    print("| metric | open-unlearning | constrained_unlearn | abs. difference |")
    print("|---|---|---|---|")
    for name, value, mine in rows(ou, ours):
        off = differs(value, mine, args.tolerance)
        bad += off
        delta = "missing" if mine is None else f"{abs(value - mine):.2e}"
        shown = "—" if mine is None else f"{mine:.6g}"
        print(f"| {name} | {value:.6g} | {shown} | {delta}{' ✗' if off else ''} |")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
