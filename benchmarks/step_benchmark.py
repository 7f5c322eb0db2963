"""Step time, throughput and peak memory of one unlearning step, variant against variant.

Every variant runs in its own subprocess (so peak memory is its own) on the same randomly
initialised Llama-architecture model and the same batches. A variant is a base, optionally
followed by ``+modifier``s:

    finetune      plain NLL step on the forget + retain sequences together (the cost floor)
    graddiff      GradDiff through the engine (penalty solver): −NLL(forget) + λ NLL(retain)
    pdu           PDU through the engine: margin loss + λ (NLL(retain) − ε), GDA dual step
    npo           NPO + retain NLL with its frozen reference model (penalty solver)
    hf            the same PDU step as a Hugging Face ``Trainer`` user writes it
                  (``hf_trainer_reference.py``; one micro-batch per step, so the same losses)

    +chunked      LM-head-fused chunked losses (``CausalLMTerms(chunk_size=1024)``)
    +fused        forget and retain concatenated into one forward (the default now; kept for
                  earlier command lines)
    +separate     ``CausalLMTerms(fused=False)``: two forwards, forget then retain (the
                  library's default before 2026-12-02)
    +grouped      ``PairedData(group_by_length=True)``: batches of similar length, less padding
    +compile      ``torch.compile`` of the model's forward (dynamic shapes); compile time is
                  the first steps' excess, reported as ``first_step_s``
    +fullhead     ``CausalLMTerms(answer_rows=False)``: the LM head on every position (the
                  library's default before 2026-12-02; the default now applies it to the
                  answer rows only)
    +plainadam    ``torch.optim.AdamW`` with PyTorch's default (foreach) kernel instead of the
                  engine's default (fused where possible, ``engine.runtime.adamw``)
    +selected, +fusedadam   accepted for earlier command lines: both are the default now

    ``pdu-before`` = ``pdu+fullhead+plainadam+separate``: the PDU step as the library ran it
    at the start of 2026-12-02.

Data: ``--data minitofu`` (the mini-TOFU "default" forget10 / retain90 QA pairs through its own
tokenizer, 19–28 tokens, ≈ 1/3 answer) or ``--data synthetic`` (random ids, lengths uniform in
``[--min-seq, --seq]``, half prompt). Presets: ``minitofu`` (the 0.72M mini-TOFU model),
``llama-58m`` (h512 × 8 layers, MLP 1376, vocab 32000, untied: 58.07M), ``llama-3.2-1b``
(its shape, random weights, nothing downloaded).

Usage:
    python benchmarks/step_benchmark.py --preset llama-58m                 # a Markdown table
    python benchmarks/step_benchmark.py --preset llama-58m --pair pdu,pdu-before \\
        --repeats 5                 # A B A B … in turn: the ratio of step medians, min/med/max
    python benchmarks/step_benchmark.py --device cuda --dtype bfloat16 --preset llama-3.2-1b \\
        --data synthetic --seq 512 --variants pdu,pdu+chunked,hf --peak-tflops 989

Each line of ``--json`` output: variant, median_s, tokens_per_s (real tokens: padding not
counted), padded_fraction, peak_mib, first_step_s, the first steps' (objective, retain) losses,
and, with ``--peak-tflops``, mfu = 6 · N · tokens + 12 · L · h · T² · B per pass over the
padded batches (PaLM's model-FLOPs count; N = parameters without the input embedding) divided
by step time and peak. Peak memory: CUDA → ``torch.cuda.max_memory_allocated``; CPU → growth of
the process's peak RSS (``ru_maxrss``) from just before the first step (allocator slack included).
The median skips the first ``--warmup`` steps.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # hf_trainer_reference

BASES = ("finetune", "graddiff", "pdu", "npo", "hf")
MODIFIERS = (
    "chunked",
    "fused",
    "selected",
    "grouped",
    "compile",
    "fusedadam",
    "fullhead",
    "plainadam",
    "separate",
)
DEFAULT_VARIANTS = "finetune,graddiff,pdu-before,pdu,pdu+chunked,pdu+grouped,npo,hf"
PRESETS: dict[str, dict[str, Any]] = {
    "minitofu": dict(
        hidden=128, layers=2, heads=4, kv_heads=4, intermediate=512, vocab=0, tie=True
    ),  # vocab 0: the tokenizer's (1,536 for mini-TOFU) → 721,536 parameters
    "llama-58m": dict(
        hidden=512, layers=8, heads=8, kv_heads=8, intermediate=1376, vocab=32000, tie=False
    ),
    # Llama-3.2-1B's shape (random weights; nothing is downloaded)
    "llama-3.2-1b": dict(
        hidden=2048, layers=16, heads=32, kv_heads=8, intermediate=8192, vocab=128256, tie=True
    ),
}
EPSILON, MULTIPLIER_INIT, DUAL_LR, LR = 1.0, 1.0, 1.0, 1e-5


ALIASES = {
    "pdu-chunked": "pdu+chunked",
    "pdu-fused": "pdu+fused",
    "pdu-before": "pdu+fullhead+plainadam+separate",
}


def parse_variant(name: str) -> tuple[str, set[str]]:
    base, *mods = ALIASES.get(name, name).split("+")
    if base not in BASES or any(m not in MODIFIERS for m in mods):
        raise SystemExit(
            f"unknown variant {name!r}: a base of {BASES} followed by +modifiers of {MODIFIERS}"
        )
    if base != "pdu" and set(mods) - {"grouped", "compile", "fusedadam", "plainadam"}:
        raise SystemExit(f"{name!r}: chunked/fused/selected/fullhead/separate apply to pdu only")
    if base == "hf" and set(mods) & {"grouped", "fusedadam", "plainadam"}:
        raise SystemExit("hf runs as Trainer does: PairedData's ungrouped order, its own AdamW")
    return base, set(mods)


def build_model(args: argparse.Namespace) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate or 4 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads or args.heads,
        max_position_embeddings=max(256, args.seq),
        tie_word_embeddings=args.tie,
        attn_implementation=args.attn,
    )
    with torch.device(args.device):  # initialised where it runs (fast for 1B on a GPU)
        model = LlamaForCausalLM(config)
    return model.to(dtype=getattr(torch, args.dtype))


def make_rows(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """``(forget, retain)`` example lists of ``{"input_ids", "labels"}`` (1-D tensors)."""
    import torch

    if args.data == "minitofu":
        from constrained_unlearn.benchmarks.minitofu.generator import generate_minitofu
        from constrained_unlearn.benchmarks.minitofu.tokenizer import iter_text, train_tokenizer
        from constrained_unlearn.llm.tokenization import QADataset

        data = generate_minitofu(0, "default")
        tokenizer = train_tokenizer(iter_text(data))
        if not args.vocab:
            args.vocab = len(tokenizer)
        if args.vocab < len(tokenizer):
            raise SystemExit(f"--vocab {args.vocab} < the mini-TOFU tokenizer's {len(tokenizer)}")
        forget = QADataset(data["forget10"], tokenizer)
        retain = QADataset(data["retain90"], tokenizer)
        return [forget[i] for i in range(len(forget))], [retain[i] for i in range(len(retain))]
    if not args.vocab:
        args.vocab = 4096
    generator = torch.Generator().manual_seed(0)
    low = args.min_seq or args.seq

    def rows(count: int) -> list[dict]:
        out = []
        for _ in range(count):
            length = int(torch.randint(low, args.seq + 1, (1,), generator=generator))
            ids = torch.randint(3, args.vocab, (length,), generator=generator)
            labels = ids.clone()
            labels[: length // 2] = -100
            out.append({"input_ids": ids, "labels": labels})
        return out

    n = args.batch * (args.steps + 1)
    return rows(n), rows(n)


def model_flops_per_pass(args: argparse.Namespace, model: Any, batch: dict) -> float:
    """6 · N · B·T + 12 · L · h · T² · B for one forward + backward of a padded ``[B, T]``."""
    b, t = batch["input_ids"].shape
    embedding = model.get_input_embeddings().weight.numel()
    n = sum(p.numel() for p in model.parameters()) - (0 if args.tie else embedding)
    return 6.0 * n * b * t + 12.0 * args.layers * args.hidden * t * t * b


def worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from constrained_unlearn.engine import Callback, EngineConfig, PairedData, UnlearningEngine
    from constrained_unlearn.engine.runtime import adamw
    from constrained_unlearn.llm import CausalLMTerms, pad_collate
    from constrained_unlearn.methods import get_method
    from constrained_unlearn.problem import ConstraintSpec

    torch.set_num_threads(args.threads)
    base, mods = parse_variant(args.variant)
    forget, retain = make_rows(args)
    model = build_model(args)
    cuda = args.device.startswith("cuda")
    times: list[float] = []
    cpu_times: list[float] = []  # process CPU seconds per step: robust on a shared machine
    losses: list[list[float]] = []

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def collate(items: list[dict]) -> dict:
        return pad_collate(items, 0)

    data = PairedData(
        forget,
        retain,
        batch_size=args.batch,
        collate_fn=collate,
        seed=0,
        group_by_length="grouped" in mods,
    )
    index_batches = data.epoch_index_batches(0)[: args.steps]
    if len(index_batches) < args.steps:
        raise SystemExit(
            f"{args.steps} steps need {args.steps * args.batch} forget examples; the data has "
            f"{len(forget)}"
        )
    if "compile" in mods:
        model.forward = torch.compile(model.forward, dynamic=True)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    start_all = time.perf_counter()
    first_step = None
    if base == "finetune":
        params = list(model.parameters())
        optimizer = (
            torch.optim.AdamW(params, lr=LR) if "plainadam" in mods else adamw(params, lr=LR)
        )
        for f_idx, r_idx in index_batches:
            batch = collate([forget[i] for i in f_idx] + [retain[i] for i in r_idx])
            batch = {k: v.to(args.device) for k, v in batch.items()}
            start = time.perf_counter()
            cpu_start = time.process_time()
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sync()
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
            if len(losses) < 3:
                losses.append([float(loss)])
        first_step = times[0]
        times, cpu_times = times[1:], cpu_times[1:]
    elif base == "hf":
        from hf_trainer_reference import run_reference

        pairs = [
            (forget[f], retain[r]) for f_idx, r_idx in index_batches for f, r in zip(f_idx, r_idx)
        ]
        result = run_reference(
            model,
            pairs,
            collate,
            steps=args.steps,
            batch_size=args.batch,
            lr=LR,
            epsilon=EPSILON,
            multiplier_init=MULTIPLIER_INIT,
            dual_lr=DUAL_LR,
            device=args.device,
        )
        times = result["times"]
        cpu_times = result["cpu_times"]
        losses = [[f, r] for f, r, _ in result["losses"][:3]]
    else:
        if base == "pdu":
            terms = CausalLMTerms(
                chunk_size=1024 if "chunked" in mods else None,
                fused="separate" not in mods,
                answer_rows=False if "fullhead" in mods else None,
            )
            kwargs: dict[str, Any] = {
                "terms_fn": terms,
                "constraints": [ConstraintSpec("retain", bound=EPSILON)],
                "solver": "gda",
                "solver_kwargs": {"multiplier_init": MULTIPLIER_INIT, "dual_lr": DUAL_LR},
            }
        else:
            name = {"graddiff": "grad-diff", "npo": "npo"}[base]
            kwargs = get_method(name).setup(model, epsilon=EPSILON).engine_kwargs()

        class Clock(Callback):
            last: float | None = None
            last_cpu = 0.0

            def on_step_end(self, engine: Any, record: Any) -> None:
                sync()
                now, cpu = time.perf_counter(), time.process_time()
                if self.last is not None:
                    times.append(now - self.last)
                    cpu_times.append(cpu - self.last_cpu)
                self.last, self.last_cpu = now, cpu
                if len(losses) < 3:
                    losses.append([record.objective, *record.values.values()])

        if "plainadam" in mods:  # the engine's default is adamw(): fused where possible
            kwargs["optimizer"] = lambda params: torch.optim.AdamW(params, lr=LR)
        clock = Clock()
        engine = UnlearningEngine(
            model,
            data=data,
            lr=LR,
            config=EngineConfig(
                epochs=1,
                max_steps=args.steps,
                progress=False,
                cpu=not cuda,
                infeasible_patience=None,
                calibration_batches=1,
            ),
            callbacks=[clock],
            **kwargs,
        )
        engine.fit()
    if first_step is None:
        first_step = time.perf_counter() - start_all - sum(times)  # to the end of step 1
    skip = min(args.warmup, len(times) - 1)
    warm, warm_cpu = times[skip:], cpu_times[skip:]
    if cuda:
        peak = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    real = padded = 0
    flops = 0.0
    for f_idx, r_idx in index_batches:
        for rows, idx in ((forget, f_idx), (retain, r_idx)):
            lengths = [len(rows[i]["input_ids"]) for i in idx]
            real += sum(lengths)
            padded += len(lengths) * max(lengths)
            flops += model_flops_per_pass(args, model, collate([rows[i] for i in idx]))
    steps = len(index_batches)
    median = statistics.median(warm)
    result: dict[str, Any] = {
        "variant": args.variant,
        "median_s": median,
        "min_s": min(warm),
        "cpu_median_s": statistics.median(warm_cpu),
        "tokens_per_s": real / steps / median,
        "padded_fraction": 1 - real / padded,
        "peak_mib": peak,
        "first_step_s": first_step,
        "losses": losses,
        "params": sum(p.numel() for p in model.parameters()),
    }
    if args.peak_tflops:
        # every variant passes each batch forward and backward once (npo's frozen reference
        # forward is not counted)
        result["mfu"] = flops / steps / median / (args.peak_tflops * 1e12)
    return result


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except Exception:  # noqa: BLE001 - not a git checkout
        return "unknown"


def run_variant(variant: str, argv: list[str]) -> dict[str, Any]:
    command = [sys.executable, __file__, *argv, "--variant", variant]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def strip_own_flags(argv: list[str]) -> list[str]:
    """The command line without the options that select variants (the worker gets its own)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--variants", "--pair", "--repeats"):
            skip = True
            continue
        if arg.startswith(("--variants=", "--pair=", "--repeats=")):
            continue
        out.append(arg)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", default=DEFAULT_VARIANTS)
    parser.add_argument(
        "--pair", default=None, help="A,B: run A and B in turn --repeats times; print A/B ratios"
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None)
    parser.add_argument("--data", choices=["minitofu", "synthetic"], default="minitofu")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=None)
    parser.add_argument("--intermediate", type=int, default=None)
    parser.add_argument("--vocab", type=int, default=0, help="0: the tokenizer's (minitofu)")
    parser.add_argument("--untied", dest="tie", action="store_false")
    parser.add_argument("--attn", default="sdpa", help="attn_implementation (sdpa, eager)")
    parser.add_argument("--batch", type=int, default=4, help="forget and retain examples each")
    parser.add_argument("--seq", type=int, default=64, help="synthetic: longest sequence")
    parser.add_argument("--min-seq", type=int, default=0, help="synthetic: shortest (0: --seq)")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3, help="steps left out of the median")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--peak-tflops", type=float, default=None, help="for MFU")
    parser.add_argument(
        "--repeats", type=int, default=1, help="subprocess runs per variant (median)"
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run every variant in this process (a smoke test: peak memory is not per variant)",
    )
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    return parser


def resolve_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parsed options with the preset's shape applied."""
    args = build_parser().parse_args(argv)
    if args.preset:
        for key, value in PRESETS[args.preset].items():
            setattr(args, key, value)
    return args


def run_in_process(argv: list[str], variants: list[str]) -> list[dict[str, Any]]:
    """:func:`worker` for every variant in this process (a smoke test; memory not per variant)."""
    args = resolve_args(argv)
    return [worker(argparse.Namespace(**{**vars(args), "variant": v})) for v in variants]


def main() -> None:
    args = resolve_args()
    if args.variant:
        print(json.dumps(worker(args)))
        return
    argv = strip_own_flags(sys.argv[1:])
    if args.pair:
        a, b = args.pair.split(",")
        parse_variant(a), parse_variant(b)
        runs: dict[str, list[dict]] = {a: [], b: []}
        for _ in range(args.repeats):
            for name in (a, b):
                runs[name].append(run_variant(name, argv))
        ratios = sorted(x["median_s"] / y["median_s"] for x, y in zip(runs[a], runs[b]))
        cpu = sorted(x["cpu_median_s"] / y["cpu_median_s"] for x, y in zip(runs[a], runs[b]))
        summary = {
            "pair": [a, b],
            "ratio_min": ratios[0],
            "ratio_median": statistics.median(ratios),
            "ratio_max": ratios[-1],
            "cpu_ratio_min": cpu[0],
            "cpu_ratio_median": statistics.median(cpu),
            "cpu_ratio_max": cpu[-1],
            "a_median_s": statistics.median(r["median_s"] for r in runs[a]),
            "b_median_s": statistics.median(r["median_s"] for r in runs[b]),
            "a_losses": runs[a][0]["losses"],
            "b_losses": runs[b][0]["losses"],
            "a_padded_fraction": runs[a][0]["padded_fraction"],
            "b_padded_fraction": runs[b][0]["padded_fraction"],
        }
        print(json.dumps(summary))
        return
    results = {}
    for variant in args.variants.split(","):
        parse_variant(variant)
        if args.in_process:
            reps = [worker(argparse.Namespace(**{**vars(args), "variant": variant}))]
        else:
            reps = [run_variant(variant, argv) for _ in range(args.repeats)]
        results[variant] = {
            **reps[0],
            "median_s": statistics.median(r["median_s"] for r in reps),
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in reps),
            "peak_mib": statistics.median(r["peak_mib"] for r in reps),
        }
        if args.json:
            print(json.dumps(results[variant]), flush=True)
    if args.json:
        return
    machine = f"{platform.machine()} {args.device} ({args.threads} threads)"
    params = next(iter(results.values()))["params"] / 1e6
    shape = (
        f"h{args.hidden} L{args.layers} {params:.2f}M B{args.batch}+{args.batch} "
        f"{args.data} {args.dtype}"
    )
    print(
        "| variant | step (ms) | tokens/s | padded | peak mem (MiB) | first losses | model "
        "| machine | date | commit |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for variant, r in results.items():
        first = ", ".join(f"{v:.4f}" for v in r["losses"][0]) if r["losses"] else ""
        print(
            f"| {variant} | {1000 * r['median_s']:.1f} | {r['tokens_per_s']:.0f} | "
            f"{r['padded_fraction']:.0%} | {r['peak_mib']:.0f} | {first} | {shape} | {machine} "
            f"| {date.today()} | {git_commit()} |"
        )
    if "pdu" in results:
        for variant, r in results.items():
            if variant != "pdu":
                print(
                    f"{variant} / pdu step time = {r['median_s'] / results['pdu']['median_s']:.3f}"
                )


if __name__ == "__main__":
    main()
