"""``constrained-unlearn`` — every command is a thin call into the library."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any


def _demo(args: argparse.Namespace) -> int:
    if args.benchmark == "muse":
        from constrained_unlearn.recipes.muse_demo import run_muse_demo

        run_muse_demo(
            size=args.size,
            seed=args.seed,
            cache_dir=args.cache_dir,
            output_dir=args.output_dir
            if args.output_dir != "outputs/demo"
            else "outputs/muse_demo",
            tracking_uri=args.tracking_uri,
            overrides=args.overrides,
            threads=args.threads,
        )
        return 0
    from constrained_unlearn.recipes.demo import run_demo

    run_demo(
        size=args.size,
        seed=args.seed,
        cache_dir=args.cache_dir,
        output_dir=args.output_dir,
        tracking_uri=args.tracking_uri,
        overrides=args.overrides,
        threads=args.threads,
    )
    return 0


def _unlearn(args: argparse.Namespace) -> int:
    from constrained_unlearn.recipes.config import MUSE_BENCHMARKS, load_config
    from constrained_unlearn.recipes.data import load_splits
    from constrained_unlearn.recipes.llm_unlearn import run_unlearning

    overrides = list(args.overrides)
    if args.tracking_uri:
        overrides.append(f"tracking.tracking_uri={args.tracking_uri}")
    cfg = load_config(args.config, overrides)
    if cfg.data.benchmark in MUSE_BENCHMARKS:
        return _muse_unlearn(cfg)
    splits = load_splits(cfg)
    result = run_unlearning(cfg, splits)
    print(
        f"done: final retain loss {result.final_retain_loss:.4f} "
        f"(ε = {result.bounds['retain']:.4f}); outputs in {result.output_dir}"
    )
    return 0


def _muse_unlearn(cfg: Any) -> int:
    """``unlearn`` with a MUSE config: corpus unlearning of ``data.forget_split`` (+ evaluation
    when ``eval.enabled``)."""
    from pathlib import Path

    from constrained_unlearn.benchmarks.minimuse import muse_eval_data
    from constrained_unlearn.benchmarks.muse import MUSE_NEWS
    from constrained_unlearn.llm import load_model_and_tokenizer
    from constrained_unlearn.recipes.muse_sequences import (
        HEADLINE_METRICS,
        agg,
        evaluate_muse,
        load_corpus,
        muse_source,
        unlearn_corpus,
    )

    source = muse_source(cfg)
    name = cfg.model.name_or_path
    if not name and cfg.data.benchmark == "minimuse":
        from constrained_unlearn.benchmarks.minimuse import build_minimuse

        name = str(build_minimuse(cfg.data.minimuse_seed, cfg.data.minimuse_size).target_path)
        cfg.model.name_or_path = name
    model, tokenizer = load_model_and_tokenizer(name, dtype=cfg.model.dtype)
    forget = load_corpus(source, cfg.data.forget_split)
    retain = load_corpus(source, cfg.data.retain_split or "retain1", "data.retain_split")
    result = unlearn_corpus(cfg, forget, retain, model=model, tokenizer=tokenizer)
    print(
        f"done: final retain loss {result.final_retain_loss:.4f} "
        f"(ε = {result.bounds['retain']:.4f}); outputs in {result.output_dir}"
    )
    if cfg.eval.enabled:
        reference = {"retrain_logs": cfg.eval.retain_logs}
        if cfg.eval.retain_logs is None and source == MUSE_NEWS:
            reference = {"retrain_auc": "news"}  # original MUSE's retrained-model constant
        results = evaluate_muse(
            result.model,
            tokenizer,
            muse_eval_data(source),
            Path(cfg.output.dir) / "eval",
            batch_size=cfg.eval.batch_size,
            **reference,
        )
        for key, title in HEADLINE_METRICS:
            print(f"{title:16s} {agg(results, key):.4f}")
    return 0


def _muse_sequence(args: argparse.Namespace) -> int:
    """``muse-scal`` / ``muse-sust``: mini-MUSE by default, a MUSE config with ``--config``."""
    kind = "scal" if args.command == "muse-scal" else "sust"
    requests = [int(k) for k in args.requests.split(",")]
    if args.config is None:
        from constrained_unlearn.recipes.muse_demo import run_minimuse_sequence

        run_minimuse_sequence(
            kind,
            size=args.size,
            seed=args.seed,
            cache_dir=args.cache_dir,
            output_dir=args.output_dir,
            tracking_uri=args.tracking_uri,
            overrides=args.overrides,
            requests=requests,
            overwrite=args.overwrite,
            evaluate=not args.no_eval,
            threads=args.threads,
        )
        return 0
    from constrained_unlearn.benchmarks.muse import MUSE_NEWS
    from constrained_unlearn.recipes.config import load_config
    from constrained_unlearn.recipes.muse_sequences import muse_source, run_sequence

    overrides = list(args.overrides)
    if args.tracking_uri:
        overrides.append(f"tracking.tracking_uri={args.tracking_uri}")
    cfg = load_config(args.config, overrides)
    source = muse_source(cfg)
    reference: dict[str, Any] = {"retrain_logs": cfg.eval.retain_logs}
    if cfg.eval.retain_logs is None and source == MUSE_NEWS:
        reference = {"retrain_auc": "news"}
    result = run_sequence(
        kind,  # type: ignore[arg-type]
        cfg,
        args.output_dir,
        source=source,
        eval_data={} if args.no_eval or not cfg.eval.enabled else None,
        requests=requests,
        eval_batch_size=cfg.eval.batch_size,
        overwrite=args.overwrite,
        **reference,
    )
    print(result.table)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from constrained_unlearn.evaluation.tofu import TofuEvaluator, write_retain_log
    from constrained_unlearn.llm import PromptTemplate, load_model_and_tokenizer
    from constrained_unlearn.recipes.data import load_benchmark

    model, tokenizer = load_model_and_tokenizer(args.model, dtype=args.dtype)
    data = load_benchmark(args.benchmark, args.data_path)
    kwargs = {
        "forget_split": args.split,
        "holdout_split": args.split.replace("forget", "holdout"),
        "template": PromptTemplate(kind=args.template),
        "batch_size": args.batch_size,
        "convention": args.convention,
        "progress": True,
    }
    if args.make_retain_log:
        results = write_retain_log(model, tokenizer, data, args.output_dir, **kwargs)
    else:
        evaluator = TofuEvaluator(
            model, tokenizer, data, retain_logs=args.retain_logs, compat=args.compat, **kwargs
        )
        results = evaluator.evaluate(
            args.output_dir,
            skip_forget_quality=args.retain_logs is None,
            skip_privleak=args.retain_logs is None,
        )
    for key, value in results.items():
        if isinstance(value, dict) and "agg_value" in value:
            print(f"{key:32s} {value['agg_value']}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from constrained_unlearn.tracking.compare import compare_runs

    compare_runs(
        args.experiment,
        filter_string=args.filter,
        tracking_uri=args.tracking_uri,
        out_dir=args.output_dir,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="constrained-unlearn",
        description="Machine unlearning as constrained optimisation (primal-dual unlearning).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="mini-TOFU (or mini-MUSE) end to end: build, unlearn with PDU, evaluate"
    )
    demo.add_argument(
        "--benchmark",
        default="minitofu",
        choices=["minitofu", "muse"],
        help="'minitofu' (default) or 'muse' (mini-MUSE: VerbMem, KnowMem, PrivLeak)",
    )
    demo.add_argument("--size", default="default", help="mini-TOFU / mini-MUSE size preset")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--cache-dir", default=None, help="where models and data are cached")
    demo.add_argument("--output-dir", default="outputs/demo")
    demo.add_argument(
        "--tracking-uri", default=None, help="MLflow URI (default sqlite:///mlflow.db)"
    )
    demo.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    demo.add_argument("overrides", nargs="*", help="config overrides, e.g. method.solver=nupi")
    demo.set_defaults(func=_demo)

    unlearn = sub.add_parser("unlearn", help="unlearn with a YAML config (+ key=value overrides)")
    unlearn.add_argument("--config", required=False, default=None)
    unlearn.add_argument("--tracking-uri", default=None)
    unlearn.add_argument("overrides", nargs="*", help="e.g. training.lr=1e-5 method.solver=nupi")
    unlearn.set_defaults(func=_unlearn)

    ev = sub.add_parser("eval", help="evaluate a model on TOFU / mini-TOFU")
    ev.add_argument("--model", required=True, help="hub id or local folder")
    ev.add_argument("--benchmark", default="tofu", help="'tofu' or 'minitofu'")
    ev.add_argument("--data-path", default=None, help="hub id or local folder of the data")
    ev.add_argument("--split", default="forget10")
    ev.add_argument("--retain-logs", default=None, help="retain model's TOFU_EVAL.json")
    ev.add_argument("--make-retain-log", action="store_true", help="write a retain log instead")
    ev.add_argument("--compat", default=None, help="'open-unlearning' to accept OU logs")
    ev.add_argument("--convention", default="open-unlearning")
    ev.add_argument("--template", default="plain", choices=["plain", "chat"])
    ev.add_argument("--dtype", default="auto")
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--output-dir", default="outputs/eval")
    ev.set_defaults(func=_eval)

    for command, what in (
        ("muse-scal", "scalability: unlearn scal/forget_1..4, each from the target"),
        ("muse-sust", "sustainability: unlearn sust/forget_1..4, each from the previous model"),
    ):
        seq = sub.add_parser(command, help=f"MUSE {what} (mini-MUSE unless --config)")
        seq.add_argument("--config", default=None, help="a MUSE run config (default: mini-MUSE)")
        seq.add_argument("--size", default="default", help="mini-MUSE size preset")
        seq.add_argument("--seed", type=int, default=0, help="mini-MUSE seed")
        seq.add_argument("--cache-dir", default=None, help="where mini-MUSE is cached")
        seq.add_argument("--output-dir", default="outputs/muse_sequences")
        seq.add_argument("--requests", default="1,2,3,4", help="requests to run, e.g. 1,2")
        seq.add_argument(
            "--overwrite", action="store_true", help="delete existing request folders first"
        )
        seq.add_argument("--no-eval", action="store_true", help="skip the MUSE evaluation")
        seq.add_argument("--tracking-uri", default=None)
        seq.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        seq.add_argument("overrides", nargs="*", help="config overrides, e.g. training.epochs=3")
        seq.set_defaults(func=_muse_sequence)

    compare = sub.add_parser("compare", help="compare MLflow runs: table and plots")
    compare.add_argument("--experiment", default="constrained-unlearn")
    compare.add_argument("--filter", default=None, help="MLflow filter string")
    compare.add_argument("--tracking-uri", default=None)
    compare.add_argument("--output-dir", default="outputs/compare")
    compare.set_defaults(func=_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
