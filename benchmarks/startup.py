"""Time to the first optimiser step of an unlearning run, after imports and model loading.

The clock starts once the libraries are imported, the model is built and the tokenizer and the
raw QA rows are in memory (what ``from_pretrained`` / ``load_dataset`` would have produced), and
stops when the first optimiser step has ended. In between, the same sequence as the
``unlearn`` recipe: tokenise forget and retain (``QADataset``), pair them (``PairedData``), set
up PDU (``get_method("pdu").setup``), build the ``UnlearningEngine`` and ``fit()`` up to the
end of step 1. Phases:

    tokenize     QADataset(forget) + QADataset(retain)
    build        PairedData + method set-up + UnlearningEngine(...)
    calibrate    inside ``engine.calibrate`` (the starting values of the constraints)
    first_step   the rest, to the end of the first optimiser step

``--epsilon given`` passes ε (PDU's retain bound) explicitly; ``calibrated`` lets the engine
set ε = (1 + α) L_r(θ₀). Each mode runs in its own process. ``--engine-option KEY=VALUE``
(repeatable, JSON values) sets ``EngineConfig`` fields, e.g. ``calibration_batches=1``, so the
same script measures a changed calibration pass after a merge.

Usage:
    python benchmarks/startup.py                        # 58M Llama, mini-TOFU default data
    python benchmarks/startup.py --preset minitofu --engine-option calibration_batches=4
"""

from __future__ import annotations

__all__ = ["build_parser", "main", "measure"]

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


class _FirstStepDone(Exception):
    pass


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from step_benchmark import PRESETS, build_model

    from constrained_unlearn.benchmarks.minitofu.generator import generate_minitofu
    from constrained_unlearn.benchmarks.minitofu.tokenizer import iter_text, train_tokenizer
    from constrained_unlearn.engine import Callback, EngineConfig, PairedData, UnlearningEngine
    from constrained_unlearn.llm import PadCollator
    from constrained_unlearn.llm.tokenization import QADataset
    from constrained_unlearn.methods import get_method

    torch.set_num_threads(args.threads)
    rows = generate_minitofu(0, args.size)
    tokenizer = train_tokenizer(iter_text(rows))
    shape = argparse.Namespace(**PRESETS[args.preset])
    shape.vocab = shape.vocab or len(tokenizer)
    shape.seq, shape.device, shape.dtype, shape.attn = 256, "cpu", "float32", "sdpa"
    model = build_model(shape)
    options = dict(args.engine_option)

    # ---- the clock starts: imports done, model and raw data loaded ----
    t0 = time.perf_counter()
    forget = QADataset(rows[args.forget], tokenizer)
    retain = QADataset(rows["retain" + f"{100 - int(args.forget[-2:]):02d}"], tokenizer)
    t_tokenized = time.perf_counter()
    data = PairedData(
        forget,
        retain,
        batch_size=args.batch,
        collate_fn=PadCollator(int(tokenizer.pad_token_id), "right"),
        seed=0,
    )
    epsilon = args.epsilon_value if args.epsilon == "given" else None
    setup = get_method("pdu").setup(model, tokenizer, epsilon=epsilon)
    kwargs = setup.engine_kwargs()
    terms_fn = kwargs.pop("terms_fn")
    calls = {"before_step": 0}

    def counted(model: Any, f: Any, r: Any) -> Any:
        calls["before_step"] += 1
        return terms_fn(model, f, r)

    stamps: dict[str, float] = {}

    class StopAfterFirstStep(Callback):
        def on_step_end(self, engine: Any, record: Any) -> None:
            stamps["first_step"] = time.perf_counter()
            raise _FirstStepDone

    engine = UnlearningEngine(
        model,
        data=data,
        terms_fn=counted,
        **kwargs,
        lr=1e-5,
        config=EngineConfig(
            epochs=1, progress=False, cpu=True, infeasible_patience=None, **options
        ),
        callbacks=[StopAfterFirstStep()],
    )
    calibrate = engine.calibrate

    def timed_calibrate(*a: Any, **k: Any) -> Any:
        start = time.perf_counter()
        try:
            return calibrate(*a, **k)
        finally:
            stamps["calibrate"] = time.perf_counter() - start
            stamps["calibration_calls"] = calls["before_step"]

    engine.calibrate = timed_calibrate  # type: ignore[method-assign]
    t_built = time.perf_counter()
    try:
        engine.fit()
    except _FirstStepDone:
        pass
    total = stamps["first_step"] - t0
    calibrate_s = stamps.get("calibrate", 0.0)
    return {
        "epsilon": args.epsilon,
        "total_s": total,
        "tokenize_s": t_tokenized - t0,
        "build_s": t_built - t_tokenized,
        "calibrate_s": calibrate_s,
        "first_step_s": stamps["first_step"] - t_built - calibrate_s,
        "calibration_batches": int(stamps.get("calibration_calls", 0)),
        "batches_per_epoch": data.batches_per_epoch(),
        "forget_rows": len(forget),
        "retain_rows": len(retain),
        "params": sum(p.numel() for p in model.parameters()),
        "engine_options": options,
    }


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_parser() -> argparse.ArgumentParser:
    from step_benchmark import PRESETS

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="llama-58m")
    parser.add_argument("--size", default="default", help="mini-TOFU size of the data")
    parser.add_argument("--forget", default="forget10")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epsilon", choices=["given", "calibrated", "both"], default="both")
    parser.add_argument("--epsilon-value", type=float, default=1.0)
    parser.add_argument("--engine-option", type=_option, action="append", default=[])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def main() -> None:
    from step_benchmark import git_commit

    args = build_parser().parse_args()
    if args.worker:
        print(json.dumps(measure(args)))
        return
    modes = ["given", "calibrated"] if args.epsilon == "both" else [args.epsilon]
    results = []
    for mode in modes:
        argv = [a for a in sys.argv[1:] if not a.startswith("--epsilon=")]
        if "--epsilon" in argv:
            i = argv.index("--epsilon")
            del argv[i : i + 2]
        command = [sys.executable, __file__, *argv, "--epsilon", mode, "--worker"]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"startup ({mode}) failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        if args.json:
            print(json.dumps(results[-1]), flush=True)
    if args.json:
        return
    print(
        "| ε | to first step (s) | tokenize | build | calibrate (batches) | first step | model "
        "| machine | date | commit |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    machine = f"{platform.machine()} cpu ({args.threads} threads)"
    for r in results:
        print(
            f"| {r['epsilon']} | {r['total_s']:.2f} | {r['tokenize_s']:.2f} | {r['build_s']:.2f} "
            f"| {r['calibrate_s']:.2f} ({r['calibration_batches']} of {r['batches_per_epoch']}) "
            f"| {r['first_step_s']:.2f} | {r['params'] / 1e6:.2f}M, {args.size} {args.forget} "
            f"B{args.batch} | {machine} | {date.today()} | {git_commit()} |"
        )


if __name__ == "__main__":
    main()
