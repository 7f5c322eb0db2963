"""Evaluation speed: teacher-forced examples/s, generated tokens/s, full mini-TOFU evaluation.

Three numbers for one model on one machine:

    teacher-forced   every answer variant of forget10_perturbed (answer, paraphrase, all
                     perturbations) scored in one batched pass (``score_question_set``):
                     sequences per second (and answer tokens per second)
    generation       greedy answers to the forget10 questions, ``max_new_tokens=200``, KV cache,
                     left padding (``generate_batched``): new tokens per second, counted by
                     re-tokenising the outputs (+1 EOS for each answer that stopped early)
    full evaluation  ``TofuEvaluator(...).evaluate()`` of the target model with the default
                     open-unlearning suite (forget Prob/ROUGE/TR, FQ, the nine MU components,
                     Min-K AUC, PrivLeak, ES) against the retain model's log, which is made
                     first and timed separately

The model is mini-TOFU's fine-tuned target (``build_minitofu``; built and cached on first use),
or, with ``--random-model`` or when ``build_minitofu`` is not available, a randomly initialised
model of mini-TOFU's architecture on mini-TOFU's data and tokenizer. A random model never emits EOS, so
it generates the full 200 tokens for every prompt: the worst case for the generation and full-
evaluation times.

Usage:
    python benchmarks/eval_speed.py                       # mini-TOFU default, 1 thread
    python benchmarks/eval_speed.py --random-model                # worst case: no EOS
    python benchmarks/eval_speed.py --device cuda --batch-size 64

Prints a markdown table row: machine, date, commit, model, the three numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def machine() -> str:
    """CPU model and core count, plus the GPU name when one is used."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} cores)"


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def random_setup(args):
    """mini-TOFU data + its tokenizer + two random models of mini-TOFU's architecture."""
    from dataclasses import replace

    from constrained_unlearn.benchmarks.minitofu import PRESETS, generate_minitofu, make_model
    from constrained_unlearn.benchmarks.minitofu.tokenizer import iter_text, train_tokenizer

    recipe = PRESETS[args.size]
    data = generate_minitofu(seed=args.seed, size=recipe.size)
    tokenizer = train_tokenizer(iter_text(data), vocab_size=recipe.vocab_size)
    spec = recipe.model
    if args.hidden is not None:
        spec = replace(spec, hidden_size=args.hidden, intermediate_size=4 * args.hidden)
    if args.layers is not None:
        spec = replace(spec, num_hidden_layers=args.layers)
    spec = replace(spec, max_position_embeddings=max(spec.max_position_embeddings, 512))
    target = make_model(spec, tokenizer, seed=args.seed).eval()
    retain = make_model(spec, tokenizer, seed=args.seed + 1).eval()
    return data, tokenizer, target, retain, "random mini-TOFU-shaped Llama"


def minitofu_setup(args):
    from constrained_unlearn.benchmarks.minitofu import build_minitofu
    from constrained_unlearn.llm import load_model_and_tokenizer

    mini = build_minitofu(seed=args.seed, size=args.size, cache_dir=args.cache_dir, progress=True)
    target, tokenizer = load_model_and_tokenizer(mini.target_path, dtype="float32")
    retain, _ = load_model_and_tokenizer(mini.retain_path, dtype="float32")
    return mini.data, tokenizer, target, retain, "mini-TOFU target"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="default", help="mini-TOFU size preset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--random-model", action="store_true")
    parser.add_argument("--hidden", type=int, default=None, help="random model width")
    parser.add_argument("--layers", type=int, default=None, help="random model depth")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    import torch

    from constrained_unlearn.evaluation.scoring import score_question_set
    from constrained_unlearn.evaluation.tofu import TofuEvaluator, write_retain_log
    from constrained_unlearn.llm import PromptTemplate, generate_batched

    torch.set_num_threads(args.threads)
    import_s = time.perf_counter() - started

    setup = random_setup
    if not args.random_model:
        try:
            from constrained_unlearn.benchmarks.minitofu import build_minitofu  # noqa: F401

            setup = minitofu_setup
        except ImportError:
            print("build_minitofu is not available: using a random Llama", file=sys.stderr)
    t0 = time.perf_counter()
    data, tokenizer, target, retain, label = setup(args)
    target.to(args.device)
    retain.to(args.device)
    setup_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in target.parameters())
    template = PromptTemplate()
    kwargs = {
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "template": template,
    }

    # warm-up: first forward / generate and the lazy imports of the metrics (rouge_score pulls
    # in nltk, forget quality scipy.stats) are one-off costs, not evaluation time
    from constrained_unlearn.evaluation.metrics import forget_quality, rouge_scores

    t0 = time.perf_counter()
    rouge_scores(["a b"], ["a c"])
    forget_quality([0.5, 1.0], [0.7, 1.2])
    import_s += time.perf_counter() - t0
    rows = [dict(r) for r in data["forget10_perturbed"]]
    score_question_set(target, tokenizer, rows[:2], ("answer",), batch_size=2)
    generate_batched(target, tokenizer, ["Question: hi\nAnswer: "], max_new_tokens=2)

    columns = ("answer", "paraphrased_answer", "perturbed_answer")
    t0 = time.perf_counter()
    scores = score_question_set(
        target, tokenizer, rows, columns, template=template, batch_size=args.batch_size
    )
    tf_s = time.perf_counter() - t0
    n_seq = sum(len(scores[c].stats) for c in columns)
    n_tok = sum(sum(scores[c].stats.lengths()) for c in columns)

    prompts = [template.format_prompt(tokenizer, str(r["question"])) for r in rows]
    t0 = time.perf_counter()
    generations = generate_batched(
        target,
        tokenizer,
        prompts,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
    )
    gen_s = time.perf_counter() - t0
    new_tokens = 0
    for text in generations:
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        new_tokens += min(args.max_new_tokens, n + (1 if n < args.max_new_tokens else 0))

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_retain_log(retain, tokenizer, data, Path(tmp) / "retain", **kwargs)
        retain_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = TofuEvaluator(
            target, tokenizer, data, retain_logs=Path(tmp) / "retain", **kwargs
        ).evaluate(Path(tmp) / "target")
        full_s = time.perf_counter() - t0

    print(
        f"# {label}: {n_params / 1e6:.2f} M parameters, device {args.device}, "
        f"{args.threads} thread(s), batch {args.batch_size}; imports {import_s:.1f} s, "
        f"setup {setup_s:.1f} s, retain log {retain_s:.1f} s",
        file=sys.stderr,
    )
    print(
        f"# teacher-forced: {n_seq} sequences / {n_tok} answer tokens in {tf_s:.2f} s; "
        f"generation: {len(prompts)} prompts, {new_tokens} new tokens in {gen_s:.2f} s",
        file=sys.stderr,
    )
    summary = {
        k: round(v["agg_value"], 4)
        for k, v in results.items()
        if k in ("forget_quality", "model_utility", "forget_truth_ratio", "privleak")
    }
    print(f"# metrics: {summary}", file=sys.stderr)
    print(
        "| machine | date | commit | model | teacher-forced ex/s | generated tok/s | "
        "full mini-TOFU eval (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {machine()}, {args.device}, {args.threads} thr | {date.today().isoformat()} | "
        f"{commit()} | {label} {n_params / 1e6:.2f} M | {n_seq / tf_s:.0f} | "
        f"{new_tokens / gen_s:.0f} | {full_s:.1f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
