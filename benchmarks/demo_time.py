"""Wall-clock time of the main job (`constrained-unlearn demo`), cold and warm.

cold: an empty cache folder (mini-TOFU generated, tokenizer trained, target and retain models
      fine-tuned and evaluated, then PDU and its evaluation);
warm: the same command again (everything but PDU and its evaluation comes from the cache).

    python benchmarks/demo_time.py                 # prints a Markdown row per phase

Budgets on the 2-core build machine: cold < 8 min, warm < 2 min.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    table = [line for line in done.stdout.splitlines() if line.startswith("|")]
    print("\n".join(table), file=sys.stderr)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="default")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        command = [
            sys.executable, "-m", "constrained_unlearn.cli.main", "demo",
            "--size", args.size, "--cache-dir", str(work / "cache"),
            "--output-dir", str(work / "out"), "--threads", str(args.threads),
            "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}",
        ]  # fmt: skip
        cold = timed(command, env, work)
        warm = timed(command, env, work)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} threads"
    print("| run | wall time (s) | budget (s) | machine | date | commit |")
    print("|---|---|---|---|---|---|")
    print(f"| demo cold ({args.size}) | {cold:.0f} | 480 | {machine} | {date.today()} | {commit} |")
    print(f"| demo warm ({args.size}) | {warm:.0f} | 120 | {machine} | {date.today()} | {commit} |")


if __name__ == "__main__":
    main()
