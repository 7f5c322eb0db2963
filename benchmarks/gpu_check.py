"""Correctness checks that need a CUDA device (run on a GPU machine; CI has none).

Each check prints one JSON line and the script exits non-zero if any fails:

    chunked-fp32    the LM-head-fused chunked margin/NLL losses equal the naive ones on CUDA
                    (values and gradients, fp32, V = 32k)
    chunked-bf16    the same in bf16 with logits of magnitude ~1e4: finite, close to fp32
    engine-bf16     a PDU run through the engine on a tiny random Llama with accelerate's
                    bf16 autocast: finite losses, λ moves, parameters stay on the GPU
    accumulation    K = 2 micro-batches give the same λ trajectory and parameters as one
                    2×-batch on CUDA (fp32, to 1e-5)

Then the measurements (``--bench``; one JSON line each, ``"bench"`` names the row), through
``step_benchmark.py`` in a subprocess per variant:

    step-1b         Llama-3.2-1B-shaped model (random weights) in bf16, forget 4 + retain 4
                    sequences of 256–512 tokens (half prompt): step time, real tokens/s, peak
                    memory and MFU (bf16 dense peak of the device, when known) of
                    pdu (today's default: head on the answer rows, one forward, fused
                    AdamW), pdu-before (the step before 2026-12-02), pdu+fullhead (naive
                    logits, V = 128,256), pdu+chunked (logits never materialised: the chunked
                    vs unchunked memory at 128k vocabulary), hf (the Hugging Face
                    ``Trainer``-style reference, same settings) and finetune (the cost floor)

``--bench full`` is the default on CUDA (≈ 3–5 min on an H100-class device), ``tiny`` (the
same variants on a tiny model, seconds) the default on the CPU, ``none`` skips them.

Usage:
    python benchmarks/gpu_check.py                 # on the GPU: checks, then measurements
    python benchmarks/gpu_check.py --device cpu    # the same on the CPU (a smoke test)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from constrained_unlearn.engine import EngineConfig, PairedData, UnlearningEngine
from constrained_unlearn.llm import CausalLMTerms, pad_collate
from constrained_unlearn.losses import margin_flattening_loss, token_nll
from constrained_unlearn.losses.chunked import chunked_head_loss
from constrained_unlearn.problem import ConstraintSpec

DEVICE = "cuda"
SCRIPTS = Path(__file__).resolve().parent
# dense bf16 peak (TFLOP/s) by device-name fragment, for MFU; unknown devices get no MFU
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}
BENCH_VARIANTS = "pdu,pdu-before,pdu+fullhead,pdu+chunked,hf,finetune"
BENCH_ARGS = {
    "full": [
        "--preset=llama-3.2-1b", "--dtype=bfloat16", "--data=synthetic", "--seq=512",
        "--min-seq=256", "--batch=4", "--steps=12", "--warmup=3", "--threads=8",
    ],
    "tiny": [
        "--hidden=32", "--layers=1", "--heads=2", "--vocab=512", "--data=synthetic",
        "--seq=16", "--min-seq=8", "--batch=2", "--steps=4", "--warmup=1", "--threads=1",
    ],
}  # fmt: skip


def check_chunked_fp32() -> dict:
    torch.manual_seed(0)
    n, h, v = 512, 256, 32000
    hidden = torch.randn(n, h, device=DEVICE, requires_grad=True)
    weight = (torch.randn(v, h, device=DEVICE) * 0.05).requires_grad_(True)
    targets = torch.randint(0, v, (n,), device=DEVICE)
    worst = 0.0
    for kind in ("margin", "nll"):
        chunked = chunked_head_loss(hidden, weight, kind=kind, targets=targets, chunk_size=128)
        logits = hidden @ weight.t()
        naive = margin_flattening_loss(logits) if kind == "margin" else token_nll(logits, targets)
        rel = abs(chunked.item() - naive.item()) / max(abs(naive.item()), 1e-12)
        worst = max(worst, rel)
        for a, b in zip(
            torch.autograd.grad(chunked, [hidden, weight]),
            torch.autograd.grad(naive, [hidden, weight]),
        ):
            worst = max(worst, ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item())
    return {"check": "chunked-fp32", "max_rel_err": worst, "ok": worst < 1e-4}


def check_chunked_bf16() -> dict:
    torch.manual_seed(0)
    n, h, v = 256, 64, 32000
    hidden = (torch.randn(n, h, device=DEVICE) * 100).requires_grad_(True)
    weight = (torch.randn(v, h, device=DEVICE) * 10).requires_grad_(True)
    reference = chunked_head_loss(hidden, weight, kind="margin", chunk_size=256)
    low = chunked_head_loss(
        hidden.detach().bfloat16().requires_grad_(True),
        weight.detach().bfloat16(),
        kind="margin",
        chunk_size=256,
    )
    rel = abs(low.float().item() - reference.item()) / reference.item()
    finite = bool(torch.isfinite(low).item())
    return {"check": "chunked-bf16", "rel_err_vs_fp32": rel, "ok": finite and rel < 0.05}


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config)


def rows(seed: int, count: int = 16, seq: int = 24):
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        ids = torch.randint(3, 512, (seq,), generator=generator)
        labels = ids.clone()
        labels[: seq // 2] = -100
        out.append({"input_ids": ids, "labels": labels})
    return out


def run_engine(batch_size: int, accumulation: int, mixed_precision: str):
    from accelerate.state import AcceleratorState

    # accelerate keeps one process-wide state; a new precision needs it cleared (the
    # process group, held by PartialState, is kept)
    AcceleratorState._reset_state()
    model = tiny_llama()
    data = PairedData(
        rows(0),
        rows(1),
        batch_size=batch_size,
        collate_fn=lambda b: pad_collate(b, 0),
        shuffle=False,
    )
    engine = UnlearningEngine(
        model,
        data=data,
        terms_fn=CausalLMTerms(),
        constraints=[ConstraintSpec("retain", bound=7.0)],
        solver="gda",
        solver_kwargs={"multiplier_init": 1.0, "dual_lr": 0.5},
        lr=1e-3,
        optimizer=(lambda params: torch.optim.SGD(params, lr=1e-2))
        if mixed_precision == "no"
        else None,
        config=EngineConfig(
            epochs=2,
            gradient_accumulation_steps=accumulation,
            mixed_precision=mixed_precision,
            progress=False,
            infeasible_patience=None,
            cpu=DEVICE == "cpu",
        ),
    )
    history = engine.fit()
    return engine, history


def check_engine_bf16() -> dict:
    engine, history = run_engine(batch_size=4, accumulation=1, mixed_precision="bf16")
    lambdas = history.series("retain/multiplier")
    values = history.series("objective") + history.series("retain/value")
    finite = all(torch.isfinite(torch.tensor(values)).tolist())
    on_device = all(
        p.device.type == torch.device(DEVICE).type for p in engine.unwrapped_model.parameters()
    )
    return {
        "check": "engine-bf16",
        "steps": len(history),
        "lambda_first_last": [lambdas[0], lambdas[-1]],
        "ok": finite and on_device and lambdas[-1] != lambdas[0],
    }


def check_accumulation() -> dict:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    big, h_big = run_engine(batch_size=4, accumulation=1, mixed_precision="no")
    small, h_small = run_engine(batch_size=2, accumulation=2, mixed_precision="no")
    lam_big = h_big.series("retain/multiplier")
    lam_small = h_small.series("retain/multiplier")
    lam_err = max(abs(a - b) for a, b in zip(lam_big, lam_small))
    param_err = max(
        (a - b).abs().max().item()
        for a, b in zip(big.unwrapped_model.parameters(), small.unwrapped_model.parameters())
    )
    return {
        "check": "accumulation",
        "steps": [len(lam_big), len(lam_small)],
        "lambda_max_err": lam_err,
        "param_max_err": param_err,
        "ok": len(lam_big) == len(lam_small) and lam_err < 1e-5 and param_err < 1e-5,
    }


def peak_tflops(name: str) -> float | None:
    for fragment, value in PEAK_BF16_TFLOPS.items():
        if fragment in name:
            return value
    return None


def run_benchmarks(mode: str, device_name: str) -> list[dict]:
    """A JSON row per variant of ``BENCH_VARIANTS`` from step_benchmark.

    ``full``: one subprocess per variant (its own peak memory); ``tiny``: all in this process.
    """
    argv = [*BENCH_ARGS[mode], f"--device={DEVICE}"]
    peak = peak_tflops(device_name) if DEVICE == "cuda" else None
    if peak:
        argv.append(f"--peak-tflops={peak}")
    variants = BENCH_VARIANTS.split(",")
    if mode == "tiny":
        sys.path.insert(0, str(SCRIPTS))
        import step_benchmark

        found = step_benchmark.run_in_process(argv, variants)
    else:
        command = [sys.executable, str(SCRIPTS / "step_benchmark.py"), *argv, "--json"]
        found = []
        for variant in variants:
            done = subprocess.run(
                [*command, f"--variants={variant}"], capture_output=True, text=True
            )
            if done.returncode != 0:
                found.append({"variant": variant, "error": done.stderr[-1500:]})
            else:
                found.append(json.loads(done.stdout.strip().splitlines()[-1]))
    rows = []
    for row in found:
        ok = "error" not in row and row["median_s"] > 0 and row["tokens_per_s"] > 0
        rows.append({"bench": f"step-{mode}", "device": device_name, **row, "ok": ok})
    return rows


def main(argv: list[str] | None = None) -> int:
    global DEVICE
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument(
        "--bench",
        choices=["auto", "full", "tiny", "none"],
        default="auto",
        help="measurements after the checks (auto: full on cuda, tiny on cpu)",
    )
    parsed = parser.parse_args(argv)
    DEVICE = parsed.device
    bench = parsed.bench if parsed.bench != "auto" else ("full" if DEVICE == "cuda" else "tiny")
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("gpu_check needs a CUDA device (or pass --device cpu)", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu"
    print(json.dumps({"device": name, "torch": torch.__version__}))
    failed = 0
    for check in (check_chunked_fp32, check_chunked_bf16, check_engine_bf16, check_accumulation):
        try:
            result = check()
        except Exception as error:  # noqa: BLE001 - report every check, then fail
            result = {"check": check.__name__, "ok": False, "error": repr(error)}
        failed += not result["ok"]
        print(json.dumps(result), flush=True)
    if bench != "none":
        for row in run_benchmarks(bench, name):
            failed += not row["ok"]
            print(json.dumps(row), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
