"""Classifier unlearning on scikit-learn's digits: original vs retrained vs PDU.

Two scenarios on the same train/test split (1347 / 450 examples, 64 standardised pixels):

* forget every training example of one class (default 8);
* forget a random 10 % of the training examples.

For each, three models are compared: the original MLP (trained on everything), the gold
standard retrained from scratch on the retain set only, and PDU — the original unlearned with
``min L_f s.t. L_r ≤ ε`` (margin flattening on the forget logits, retain cross-entropy bounded by
ε = 1.1 · L_r(θ₀)). MIA AUC is the loss-threshold attack, forget examples vs matched test
examples (0.5: indistinguishable from unseen data). Runs offline on the CPU in seconds:

    python examples/classifier_digits.py [--solver extragradient] [--forget-class 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from constrained_unlearn.classifier import (
    ClassifierMetrics,
    digits_split,
    evaluate_classifier,
    train_original,
    train_retrained,
    unlearn_classifier,
)


def _row(label: str, metrics: list[ClassifierMetrics], field: str, percent: bool) -> str:
    cells = []
    for m in metrics:
        value = getattr(m, field)
        cells.append(f"{100 * value:10.1f}" if percent else f"{value:10.4f}")
    return f"  {label:<30}" + "".join(cells)


def report(title: str, columns: dict[str, ClassifierMetrics], class_scenario: bool) -> None:
    """Print one scenario's table: one column per model."""
    print(f"\n{title}")
    print(f"  {'':<30}" + "".join(f"{name:>10}" for name in columns))
    metrics = list(columns.values())
    print(_row("forget acc (%)", metrics, "forget_acc", True))
    print(_row("retain acc (%)", metrics, "retain_acc", True))
    print(_row("test acc (%)", metrics, "test_acc", True))
    if class_scenario:
        print(_row("test acc, other classes (%)", metrics, "test_acc_other", True))
        print(_row("test acc, forgotten class (%)", metrics, "test_acc_forget_class", True))
    print(_row("MIA AUC (forget vs test)", metrics, "mia_auc", False))
    print(_row("retain loss (full D_r)", metrics, "retain_loss", False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--solver", default="gda", help="gda, extragradient, nupi, …")
    parser.add_argument("--forget-class", type=int, default=8)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()

    scenarios = {
        f"Forget class {args.forget_class}": digits_split(
            "class", forget_class=args.forget_class, seed=args.seed
        ),
        f"Forget a random {100 * args.fraction:.0f} % of the training set": digits_split(
            "random", fraction=args.fraction, seed=args.seed
        ),
    }
    # both scenarios share the train/test split, hence the original model
    original = train_original(next(iter(scenarios.values())), seed=args.seed)
    for title, split in scenarios.items():
        retrained = train_retrained(split, seed=args.seed)
        result = unlearn_classifier(original, split, solver=args.solver, seed=args.seed)
        columns = {
            "original": evaluate_classifier(original, split),
            "retrained": evaluate_classifier(retrained, split),
            f"PDU-{args.solver}"[:10]: evaluate_classifier(result.model, split),
        }
        report(
            f"{title}: |D_f| = {len(split.forget_index)}, |D_r| = {len(split.retain_index)}, "
            f"|test| = {len(split.y_test)}",
            columns,
            split.scenario == "class",
        )
        print(
            f"  constraint: ε = 1.1 · L_r(θ₀) = {result.epsilon:.4f}, engine target "
            f"{result.target:.4f}; final L_r = {result.final_retain_loss:.4f} "
            f"= {result.constraint_ratio:.3f} ε; λ_T = {result.multipliers['retain']:.1f}; "
            f"{len(result.history)} steps"
        )
    print(f"\ntotal time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
