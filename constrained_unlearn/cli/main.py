"""``constrained-unlearn`` — every command is a thin call into the library.

Importing this module is cheap (no torch, MLflow, ``datasets``, matplotlib, scipy or peft):
each command imports what it needs inside its handler. Failures are reported by
`constrained_unlearn.cli.errors` as one or two lines with the fix (exit 2: input, 1:
runtime, 130: interrupted); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from constrained_unlearn.numerics import DOCUMENTED_THREADS, pin_cpu_numerics

__all__ = ["build_parser", "entry", "main"]

logger = logging.getLogger("constrained_unlearn.cli")


# ---------------------------------------------------------------------------------- output
def _configure_output(verbosity: int) -> Callable[[], None]:
    """Messages through ``logging`` (−1 quiet: warnings only, 0: info, 1 verbose: debug);
    dependencies' INFO lines and progress bars kept out of the way unless verbose.

    Returns:
        A function undoing the environment, logging and warning changes (``main`` calls it at
        the end, so calling ``main`` in a process leaves that process as it was).
    """
    wanted = {"MLFLOW_DISABLE_TELEMETRY": "true", "TOKENIZERS_PARALLELISM": "false"}
    if verbosity < 1:
        wanted.update(
            TRANSFORMERS_VERBOSITY="error",
            DATASETS_VERBOSITY="error",
            MLFLOW_LOGGING_LEVEL="WARNING",
            TRANSFORMERS_NO_ADVISORY_WARNINGS="1",
        )
    if verbosity < 0:
        wanted.update(TQDM_DISABLE="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    added = [key for key in wanted if key not in os.environ]  # the user's settings win
    for key in added:
        os.environ[key] = wanted[key]
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    package = logging.getLogger("constrained_unlearn")
    saved = (package.level, package.propagate, warnings.showwarning)
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    package.addHandler(handler)
    package.setLevel(level)
    package.propagate = False

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        logging.getLogger("constrained_unlearn.warnings").warning(
            "%s: %s", category.__name__, message
        )

    warnings.showwarning = show  # one line per warning, no source excerpt

    def restore() -> None:
        for key in added:
            os.environ.pop(key, None)
        package.removeHandler(handler)
        package.setLevel(saved[0])
        package.propagate = saved[1]
        warnings.showwarning = saved[2]

    return restore


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the message."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ sets it
        pass


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {text}"
        return text


def _verbosity(args: argparse.Namespace) -> int:
    if getattr(args, "quiet", False):
        return -1
    return 1 if getattr(args, "verbose", False) else 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("constrained-unlearn")
    except PackageNotFoundError:
        return "unknown (not installed)"


# ---------------------------------------------------------------------------------- commands
def _demo(args: argparse.Namespace) -> int:
    from constrained_unlearn.cli.process import owns_process

    if owns_process():  # the documented tables were measured with these kernels
        pin_cpu_numerics()
    import torch

    threads_before = torch.get_num_threads()  # a caller's process gets its setting back
    try:
        _run_demo(args)
    finally:
        torch.set_num_threads(threads_before)
    return 0


def _run_demo(args: argparse.Namespace) -> None:
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
        return
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


def _overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(args.overrides)
    if getattr(args, "tracking_uri", None):
        overrides.append(f"tracking.tracking_uri={args.tracking_uri}")
    if getattr(args, "output_dir", None) and args.command == "unlearn":
        overrides.append(f"output.dir={args.output_dir}")
    return overrides


def _print_yaml(data: Any) -> None:
    import yaml

    print(yaml.safe_dump(data, sort_keys=False), end="")


def _done(result: Any) -> None:
    if os.environ.get("RANK", "0") != "0":  # one summary per launch: the main process says it
        return
    satisfied = getattr(result, "constraint_satisfied", True)
    verdict = "within" if satisfied else "OUTSIDE"
    print(
        f"done: final retain loss {result.final_retain_loss:.4f} {verdict} ε = "
        f"{result.bounds['retain']:.4f}; outputs in {result.output_dir}"
    )
    if getattr(result, "tracking_degraded", False):
        print("tracking was degraded: metrics kept in the output folder (see train_summary.json)")


def _unlearn(args: argparse.Namespace) -> int:
    from constrained_unlearn.recipes.config import MUSE_BENCHMARKS, load_config

    cfg = load_config(args.config, _overrides(args))
    if args.print_config:
        _print_yaml(cfg.to_dict())
        return 0
    from constrained_unlearn.recipes.llm_unlearn import preflight

    preflight(cfg)  # output folder writable, tracking store reachable: before any compute
    if cfg.data.benchmark in MUSE_BENCHMARKS:
        return _muse_unlearn(cfg)
    from constrained_unlearn.recipes.data import load_splits
    from constrained_unlearn.recipes.llm_unlearn import run_unlearning

    logger.info("loading %s data", cfg.data.benchmark)
    splits = load_splits(cfg)
    result = run_unlearning(cfg, splits)
    _done(result)
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
    _done(result)
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
    try:
        requests = [int(k) for k in args.requests.split(",")]
    except ValueError:
        raise _UsageError(
            f"--requests {args.requests!r} must be comma-separated integers, e.g. 1,2"
        ) from None
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
    from constrained_unlearn.recipes.llm_unlearn import preflight
    from constrained_unlearn.recipes.muse_sequences import muse_source, run_sequence

    cfg = load_config(args.config, _overrides(args))
    preflight(cfg)
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
    from constrained_unlearn.cli.process import loading
    from constrained_unlearn.llm import PromptTemplate, load_model_and_tokenizer

    logger.info("loading %s", args.model)
    with loading():
        # the model first: a missing id fails in seconds, before the evaluator's imports
        model, tokenizer = load_model_and_tokenizer(args.model, dtype=args.dtype)
        from constrained_unlearn.recipes.output_dir import check_output_dir

        check_output_dir(args.output_dir)  # before any scoring
        from constrained_unlearn.evaluation.tofu import TofuEvaluator, write_retain_log
        from constrained_unlearn.recipes.data import load_benchmark

        data = load_benchmark(args.benchmark, args.data_path)
    kwargs: dict[str, Any] = {
        "forget_split": args.split,
        "holdout_split": args.split.replace("forget", "holdout"),
        "template": PromptTemplate(kind=args.template),
        "batch_size": args.batch_size,
        "convention": args.convention,
        "progress": _verbosity(args) >= 0,
    }
    if args.max_new_tokens is not None:  # default: the evaluator fits the model's context
        kwargs["max_new_tokens"] = args.max_new_tokens
    if args.tokenization is not None:
        kwargs["tokenization"] = args.tokenization
    if args.allow_self_reference:
        kwargs["allow_self_reference"] = True
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
            print(f"{key:32s} {_rounded(value['agg_value'])}")
    print(f"reports written to {args.output_dir}")
    return 0


def _rounded(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if value != 0 and abs(value) < 1e-3 else f"{value:.4f}"
    return str(value)


def _compare(args: argparse.Namespace) -> int:
    from constrained_unlearn.tracking.compare import compare_runs

    comparison = compare_runs(
        args.experiment,
        filter_string=args.filter,
        tracking_uri=args.tracking_uri,
        out_dir=args.output_dir,
    )
    print(comparison.describe())
    return 0


def _configs(args: argparse.Namespace) -> int:
    from constrained_unlearn.cli.configs_cmd import run_configs

    return run_configs(args.action, args.name, dest=args.dest, force=args.force)


class _UsageError(ValueError):
    """A command-line argument is wrong (reported with exit status 2)."""


# ---------------------------------------------------------------------------------- parser
class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """One description per option with its default; epilogs (examples) kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        flag = action.nargs == 0  # --flag options: off unless given
        shown = (
            action.default is not argparse.SUPPRESS
            and not flag
            and not action.required
            and action.option_strings
        )
        if shown and "%(default)" not in text and not (action.default is None and "None" in text):
            text += " (default: %(default)s)"
        return text


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--debug``, ``--quiet``, ``--verbose`` before or after the command name."""
    default: Any = False if top else argparse.SUPPRESS
    group = parser.add_argument_group("output")
    group.add_argument(
        "--debug", action="store_true", default=default, help="print tracebacks of errors"
    )
    loud = group.add_mutually_exclusive_group()
    loud.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="warnings and results only"
    )
    loud.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="debug messages, and the dependencies' own INFO lines and progress bars",
    )


def _sub(
    sub: Any, name: str, help: str, examples: Sequence[str], description: str | None = None
) -> argparse.ArgumentParser:
    epilog = "examples:\n" + "\n".join(f"  constrained-unlearn {e}" for e in examples)
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=epilog,
        formatter_class=_HelpFormatter,
    )
    _common(parser, top=False)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``constrained-unlearn`` argument parser (subcommands and their options)."""
    parser = argparse.ArgumentParser(
        prog="constrained-unlearn",
        description="Machine unlearning as constrained optimisation (primal-dual unlearning).",
        epilog="examples:\n  constrained-unlearn demo\n  constrained-unlearn configs list\n"
        "  constrained-unlearn unlearn --config tofu_llama32_1b_pdu training.lr=2e-5\n"
        "run `constrained-unlearn COMMAND --help` for a command's options",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = _sub(
        sub,
        "demo",
        "mini-TOFU (or mini-MUSE) end to end: build, unlearn with PDU, evaluate",
        ["demo", "demo method.solver=nupi", "demo --benchmark muse --threads 2"],
    )
    demo.add_argument(
        "--benchmark",
        default="minitofu",
        choices=["minitofu", "muse"],
        help="'minitofu' or 'muse' (mini-MUSE: VerbMem, KnowMem, PrivLeak)",
    )
    demo.add_argument("--size", default="default", help="mini-TOFU / mini-MUSE size preset")
    demo.add_argument("--seed", type=int, default=0, help="seed of the build and the run")
    demo.add_argument("--cache-dir", default=None, help="where models and data are cached")
    demo.add_argument("--output-dir", default="outputs/demo", help="where the run writes")
    demo.add_argument("--tracking-uri", default=None, help="MLflow URI (None: sqlite:///mlflow.db)")
    demo.add_argument(
        "--threads",
        type=int,
        default=DOCUMENTED_THREADS,
        help="torch CPU threads (the documented tables use this many; the results depend on it)",
    )
    demo.add_argument("overrides", nargs="*", help="config overrides, e.g. method.solver=nupi")
    demo.set_defaults(func=_demo)

    unlearn = _sub(
        sub,
        "unlearn",
        "unlearn with a YAML config (+ section.key=value overrides)",
        [
            "unlearn --config tofu_llama32_1b_pdu",
            "unlearn --config my_run.yaml training.lr=2e-5 method.solver=nupi",
            "unlearn --config tofu_llama32_1b_pdu --print-config",
        ],
    )
    unlearn.add_argument(
        "--config",
        default=None,
        help="a YAML file or a bundled config name (`constrained-unlearn configs list`); "
        "None: the defaults (mini-TOFU)",
    )
    unlearn.add_argument(
        "--tracking-uri", default=None, help="MLflow URI, overrides tracking.tracking_uri"
    )
    unlearn.add_argument("--output-dir", default=None, help="overrides output.dir")
    unlearn.add_argument(
        "--print-config",
        action="store_true",
        help="print the configuration (file + overrides + defaults) and exit",
    )
    unlearn.add_argument("overrides", nargs="*", help="e.g. training.lr=1e-5 method.solver=nupi")
    unlearn.set_defaults(func=_unlearn)

    ev = _sub(
        sub,
        "eval",
        "evaluate a model on TOFU / mini-TOFU",
        [
            "eval --model outputs/run/model --benchmark minitofu",
            "eval --model ORG/MODEL --data-path /data/TOFU --retain-logs retain/TOFU_EVAL.json",
            "eval --model ORG/RETAIN-MODEL --make-retain-log --output-dir retain",
        ],
    )
    ev.add_argument("--model", required=True, help="hub id or local folder (required)")
    ev.add_argument("--benchmark", default="tofu", choices=["tofu", "minitofu"], help="benchmark")
    ev.add_argument("--data-path", default=None, help="hub id or local folder of the data")
    ev.add_argument("--split", default="forget10", help="forget split (forget01/05/10)")
    ev.add_argument("--retain-logs", default=None, help="retain model's TOFU_EVAL.json")
    ev.add_argument("--make-retain-log", action="store_true", help="write a retain log instead")
    ev.add_argument("--compat", default=None, help="'open-unlearning' to accept its logs")
    ev.add_argument("--convention", default="open-unlearning", help="metric convention")
    ev.add_argument("--template", default="plain", choices=["plain", "chat"], help="prompt form")
    ev.add_argument(
        "--tokenization",
        default=None,
        choices=["separate", "joint"],
        help="prompt and answer tokenised apart or as one string (None: the convention's)",
    )
    ev.add_argument(
        "--allow-self-reference",
        action="store_true",
        help="accept a --retain-logs file made by these very weights (FQ is then 1 by "
        "construction; default: refused)",
    )
    ev.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="generation length (None: what fits the model's context)",
    )
    ev.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    ev.add_argument("--batch-size", type=int, default=32, help="scoring batch size")
    ev.add_argument("--output-dir", default="outputs/eval", help="where the reports go")
    ev.set_defaults(func=_eval)

    for command, what in (
        ("muse-scal", "scalability: unlearn scal/forget_1..4, each from the target"),
        ("muse-sust", "sustainability: unlearn sust/forget_1..4, each from the previous model"),
    ):
        seq = _sub(
            sub,
            command,
            f"MUSE {what} (mini-MUSE unless --config)",
            [command, f"{command} --requests 1,2 --no-eval", f"{command} --config muse_news_pdu"],
        )
        seq.add_argument("--config", default=None, help="a MUSE run config (None: mini-MUSE)")
        seq.add_argument("--size", default="default", help="mini-MUSE size preset")
        seq.add_argument("--seed", type=int, default=0, help="mini-MUSE seed")
        seq.add_argument("--cache-dir", default=None, help="where mini-MUSE is cached")
        seq.add_argument("--output-dir", default="outputs/muse_sequences", help="where it writes")
        seq.add_argument("--requests", default="1,2,3,4", help="requests to run, e.g. 1,2")
        seq.add_argument(
            "--overwrite", action="store_true", help="delete existing request folders first"
        )
        seq.add_argument("--no-eval", action="store_true", help="skip the MUSE evaluation")
        seq.add_argument("--tracking-uri", default=None, help="MLflow URI")
        seq.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        seq.add_argument("overrides", nargs="*", help="config overrides, e.g. training.epochs=3")
        seq.set_defaults(func=_muse_sequence)

    compare = _sub(
        sub,
        "compare",
        "compare MLflow runs: table and plots",
        [
            "compare",
            "compare --experiment tofu-forget10",
            "compare --filter \"tags.solver = 'nupi'\" --output-dir outputs/nupi",
        ],
    )
    compare.add_argument("--experiment", default="constrained-unlearn", help="experiment name")
    compare.add_argument("--filter", default=None, help="MLflow filter string")
    compare.add_argument("--tracking-uri", default=None, help="MLflow URI")
    compare.add_argument("--output-dir", default="outputs/compare", help="where files go")
    compare.set_defaults(func=_compare)

    configs = _sub(
        sub,
        "configs",
        "list, show or copy the run configs shipped with the package",
        [
            "configs list",
            "configs show tofu_llama32_1b_pdu",
            "configs copy tofu_llama32_1b_pdu my_run.yaml",
            "configs path accelerate/fsdp",
        ],
    )
    configs.add_argument("action", choices=["list", "show", "copy", "path"], help="what to do")
    configs.add_argument("name", nargs="?", default=None, help="a bundled config's name")
    configs.add_argument(
        "dest", nargs="?", default=None, help="copy: file or folder to write (None: ./NAME.yaml)"
    )
    configs.add_argument("--force", action="store_true", help="copy: overwrite an existing file")
    configs.set_defaults(func=_configs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 runtime failure, 2 bad
    input, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    restore = _configure_output(_verbosity(args))
    try:
        return _run(args)
    finally:
        restore()


def entry() -> None:
    """The console script and ``python -m constrained_unlearn``: `main` as the program that
    owns the process (see `constrained_unlearn.cli.process`)."""
    from constrained_unlearn.cli.process import run_as_program

    run_as_program(main)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except BaseException as err:  # noqa: BLE001 - every failure becomes a short report
        if isinstance(err, SystemExit):
            raise
        from constrained_unlearn.cli.errors import describe

        if getattr(args, "debug", False):
            traceback.print_exc()
        report = describe(err)
        print(report.message, file=sys.stderr)
        if (
            not getattr(args, "debug", False)
            and "\n" not in report.message
            and report.status != 130
        ):
            print("  (rerun with --debug for the traceback)", file=sys.stderr)
        return report.status


if __name__ == "__main__":
    sys.exit(main())
