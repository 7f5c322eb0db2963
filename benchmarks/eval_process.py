"""One TOFU evaluation as a whole process: what ``constrained-unlearn eval`` does, timed end to end.

    python benchmarks/eval_process.py --model DIR --data DIR --retain-logs DIR --output-dir OUT

loads the model and tokenizer, reads only the TOFU configs the metrics need
(``evaluation.tofu.required_configs`` + ``benchmarks.tofu.tofu_eval_data``), evaluates the default
open-unlearning suite against the retain log and writes ``TOFU_EVAL.json`` /
``TOFU_SUMMARY.json``. Prints the rounded headline numbers and, on stderr, the time spent in
imports, loading and the metric loop. ``--make-retain-log`` writes the retain log instead.

Time it from outside (wall time, peak memory) with e.g. ``/usr/bin/time -v python
benchmarks/eval_process.py ...``; the numbers in docs/benchmarks.md ("Evaluation speed") were
measured that way, against the same evaluation at the previous commit.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder (or hub id)")
    parser.add_argument("--data", required=True, help="TOFU data: local folder or hub id")
    parser.add_argument("--retain-logs", default=None, help="retain model's TOFU_EVAL.json")
    parser.add_argument("--make-retain-log", action="store_true")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--split", default="forget10")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--tokenization", default=None, choices=["joint", "separate"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    from constrained_unlearn.cli.process import loading

    with loading():  # imports and loading as `constrained-unlearn eval` does them
        import torch

        torch.set_num_threads(args.threads)
        from constrained_unlearn.benchmarks.tofu import tofu_eval_data
        from constrained_unlearn.evaluation.report import format_summary
        from constrained_unlearn.evaluation.tofu import (
            TofuEvaluator,
            required_configs,
            write_retain_log,
        )
        from constrained_unlearn.llm.loading import load_model_and_tokenizer

        imported = time.perf_counter()
        model, tokenizer = load_model_and_tokenizer(args.model, dtype="float32")
        holdout = args.split.replace("forget", "holdout")
        configs = required_configs(None, forget_split=args.split, holdout_split=holdout)
        data = tofu_eval_data(args.data, configs)
    loaded = time.perf_counter()
    loaded_cpu = time.process_time()
    kwargs = {
        "forget_split": args.split,
        "holdout_split": holdout,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "tokenization": args.tokenization,
    }
    if args.make_retain_log:
        results = write_retain_log(model, tokenizer, data, args.output_dir, **kwargs)
    else:
        results = TofuEvaluator(
            model, tokenizer, data, retain_logs=args.retain_logs, **kwargs
        ).evaluate(
            args.output_dir,
            overwrite=True,
            skip_forget_quality=args.retain_logs is None,
            skip_privleak=args.retain_logs is None,
        )
    done = time.perf_counter()
    metrics_cpu = time.process_time() - loaded_cpu
    print(format_summary(results))
    print(
        f"# imports {imported - started:.2f} s, model + data {loaded - imported:.2f} s, "
        f"metrics {done - loaded:.2f} s ({metrics_cpu:.2f} s CPU), "
        f"total {done - started:.2f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    from constrained_unlearn.cli.process import run_as_program

    run_as_program(main)  # the program's own collector policy, as the console script
