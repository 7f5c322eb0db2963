"""Step time and peak memory of one unlearning step, method against method.

Every variant runs in its own subprocess (so peak memory is its own) on the same randomly
initialised Llama-architecture model and the same synthetic batch (forget B × T, retain B × T,
half of every sequence is prompt, half answer):

    finetune      plain NLL step on the 2B sequences (the cost floor)
    graddiff      GradDiff through the engine (penalty solver): −NLL(forget) + λ NLL(retain)
    pdu           PDU through the engine: margin loss + λ (NLL(retain) − ε), GDA dual step
    pdu-chunked   PDU with the LM-head-fused chunked losses (logits never materialised)
    pdu-fused     PDU with forget and retain concatenated into one forward
    npo           NPO + retain NLL with its frozen reference model (penalty solver)

Usage (CPU, this machine):
    python benchmarks/step_benchmark.py                                  # default model
    python benchmarks/step_benchmark.py --vocab 128000 --hidden 64 --layers 2 \\
        --variants pdu,pdu-chunked                                       # memory-lean check
    python benchmarks/step_benchmark.py --device cuda --dtype bfloat16 --preset llama-3.2-1b

Peak memory: CUDA → ``torch.cuda.max_memory_allocated``; CPU → growth of the process's peak
RSS (``ru_maxrss``) from just before the first step, which includes allocator slack.
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

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("finetune", "graddiff", "pdu", "pdu-chunked", "pdu-fused", "npo")
PRESETS = {
    # Llama-3.2-1B's shape (random weights; nothing is downloaded)
    "llama-3.2-1b": dict(
        hidden=2048, layers=16, heads=32, kv_heads=8, intermediate=8192, vocab=128256
    ),
}


def build_model(args):
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
        tie_word_embeddings=True,
    )
    dtype = getattr(torch, args.dtype)
    return LlamaForCausalLM(config).to(device=args.device, dtype=dtype)


def synthetic_rows(args, seed):
    import torch

    generator = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(args.batch * 4):
        ids = torch.randint(3, args.vocab, (args.seq,), generator=generator)
        labels = ids.clone()
        labels[: args.seq // 2] = -100
        rows.append({"input_ids": ids, "labels": labels})
    return rows


def worker(args) -> dict:
    import torch

    from constrained_unlearn.engine import Callback, EngineConfig, PairedData, UnlearningEngine
    from constrained_unlearn.llm import CausalLMTerms, pad_collate
    from constrained_unlearn.methods import get_method
    from constrained_unlearn.problem import ConstraintSpec

    torch.set_num_threads(args.threads)
    model = build_model(args)
    forget, retain = synthetic_rows(args, 0), synthetic_rows(args, 1)
    cuda = args.device.startswith("cuda")
    times: list[float] = []

    def sync():
        if cuda:
            torch.cuda.synchronize()

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    variant = args.variant
    if variant == "finetune":
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        batch = pad_collate(forget[: args.batch] + retain[: args.batch], 0)
        batch = {k: v.to(args.device) for k, v in batch.items()}
        for _ in range(args.steps):
            start = time.perf_counter()
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sync()
            times.append(time.perf_counter() - start)
    else:
        if variant.startswith("pdu"):
            terms = CausalLMTerms(
                chunk_size=1024 if variant == "pdu-chunked" else None,
                fused=variant == "pdu-fused",
            )
            kwargs = {
                "terms_fn": terms,
                "constraints": [ConstraintSpec("retain", bound=1.0)],
                "solver": "gda",
                "solver_kwargs": {"multiplier_init": 1.0, "dual_lr": 1.0},
            }
        else:
            name = {"graddiff": "grad-diff", "npo": "npo"}[variant]
            setup = get_method(name).setup(model, epsilon=1.0)
            kwargs = setup.engine_kwargs()

        class Clock(Callback):
            last = None

            def on_step_end(self, engine, record):
                sync()
                now = time.perf_counter()
                if self.last is not None:
                    times.append(now - self.last)
                self.last = now

        data = PairedData(
            forget,
            retain,
            batch_size=args.batch,
            collate_fn=lambda b: pad_collate(b, 0),
            shuffle=False,
        )
        engine = UnlearningEngine(
            model,
            data=data,
            lr=1e-5,
            config=EngineConfig(
                epochs=args.steps,
                max_steps=args.steps + 1,
                progress=False,
                cpu=not cuda,
                infeasible_patience=None,
            ),
            callbacks=[Clock()],
            **kwargs,
        )
        engine.fit()
    warm = times[min(3, len(times) - 1) :]
    if cuda:
        peak = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    tokens = 2 * args.batch * args.seq
    median = statistics.median(warm)
    return {
        "variant": variant,
        "median_s": median,
        "tokens_per_s": tokens / median,
        "peak_mib": peak,
    }


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=None)
    parser.add_argument("--intermediate", type=int, default=None)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument(
        "--repeats", type=int, default=1, help="subprocess runs per variant (median)"
    )
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    args = parser.parse_args()
    if args.preset:
        for key, value in PRESETS[args.preset].items():
            setattr(args, key, value)
    if args.variant:
        print(json.dumps(worker(args)))
        return
    results = {}
    for variant in args.variants.split(","):
        runs = []
        for _ in range(args.repeats):
            command = [sys.executable, __file__, *sys.argv[1:], "--variant", variant]
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            if done.returncode != 0:
                raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        results[variant] = {
            "median_s": statistics.median(r["median_s"] for r in runs),
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in runs),
            "peak_mib": statistics.median(r["peak_mib"] for r in runs),
        }
        if args.json:
            print(json.dumps({"variant": variant, **results[variant]}))
    if args.json:
        return
    machine = f"{platform.machine()} {args.device} ({args.threads} threads)"
    shape = f"h{args.hidden} L{args.layers} V{args.vocab} B{args.batch}×T{args.seq} {args.dtype}"
    print("| variant | step (ms) | tokens/s | peak mem (MiB) | model | machine | date | commit |")
    print("|---|---|---|---|---|---|---|---|")
    for variant, r in results.items():
        print(
            f"| {variant} | {1000 * r['median_s']:.1f} | {r['tokens_per_s']:.0f} | {r['peak_mib']:.0f} | "
            f"{shape} | {machine} | {date.today()} | {git_commit()} |"
        )
    ratios = []
    if "pdu" in results and "graddiff" in results:
        ratios.append(
            f"PDU / GradDiff = {results['pdu']['median_s'] / results['graddiff']['median_s']:.3f}"
        )
    if "pdu" in results and "finetune" in results:
        ratios.append(
            f"PDU / fine-tune = {results['pdu']['median_s'] / results['finetune']['median_s']:.3f}"
        )
    if "pdu" in results and "pdu-chunked" in results:
        ratios.append(
            f"chunked / naive PDU: memory {results['pdu-chunked']['peak_mib'] / max(results['pdu']['peak_mib'], 1e-9):.3f}, "
            f"time {results['pdu-chunked']['median_s'] / results['pdu']['median_s']:.3f}"
        )
    if "pdu" in results and "pdu-fused" in results:
        ratios.append(
            f"fused / two-pass PDU time = {results['pdu-fused']['median_s'] / results['pdu']['median_s']:.3f}"
        )
    for line in ratios:
        print(line)


if __name__ == "__main__":
    main()
