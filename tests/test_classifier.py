"""Classifier unlearning on digits: data, terms, metrics, and PDU's bars with default settings."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from constrained_unlearn.classifier import (
    ClassifierSplit,
    ClassifierTerms,
    digits_split,
    evaluate_classifier,
    forget_class_split,
    forget_random_split,
    load_digits_data,
    loss_threshold_mia_auc,
    train_original,
    train_retrained,
    unlearn_classifier,
)
from constrained_unlearn.classifier import unlearn as unlearn_module

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def class_split() -> ClassifierSplit:
    return digits_split("class", forget_class=8)


@pytest.fixture(scope="module")
def random_split() -> ClassifierSplit:
    return digits_split("random", fraction=0.1)


@pytest.fixture(scope="module")
def original(class_split):
    return train_original(class_split)


@pytest.fixture(scope="module")
def class_result(original, class_split):
    return unlearn_classifier(original, class_split)


# -- data ---------------------------------------------------------------------------------
def test_digits_are_standardized_and_split_deterministically(class_split, random_split):
    data = class_split.data
    assert data.x_train.shape == (1347, 64) and data.x_test.shape == (450, 64)
    assert data.num_classes == 10
    varying = data.x_train.std(dim=0, unbiased=False) > 0
    assert torch.allclose(data.x_train.mean(dim=0), torch.zeros(64), atol=1e-5)
    assert torch.allclose(
        data.x_train.std(dim=0, unbiased=False)[varying], torch.ones(int(varying.sum())), atol=1e-4
    )
    again = load_digits_data()
    assert torch.equal(again.x_train, data.x_train) and torch.equal(again.y_test, data.y_test)
    # class scenario: D_f is exactly class 8 and test_forget_mask picks the test 8s
    assert bool((class_split.y_forget == 8).all()) and not bool((class_split.y_retain == 8).any())
    assert torch.equal(class_split.test_forget_mask, data.y_test == 8)
    # random scenario: 10 % of the training set, a partition, the whole test set matched
    assert len(random_split.forget_index) == round(0.1 * 1347)
    both = torch.cat([random_split.forget_index, random_split.retain_index]).sort().values
    assert torch.equal(both, torch.arange(1347))
    assert bool(random_split.test_forget_mask.all())


def test_bad_forget_class_and_empty_forget_set_are_rejected():
    data = load_digits_data()
    with pytest.raises(
        ValueError, match=r"forget_class=10 is not a class id; choose one of 0\.\.9"
    ):
        forget_class_split(data, 10)
    with pytest.raises(ValueError, match="forget_class=-1"):
        forget_class_split(data, -1)
    with pytest.raises(TypeError, match="forget_class must be an integer"):
        forget_class_split(data, "8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="forget set would be empty"):
        forget_random_split(data, 0.0)
    with pytest.raises(ValueError, match="forget set would be empty"):
        forget_random_split(data, 1e-5)
    with pytest.raises(ValueError, match="leaves no retain set"):
        forget_random_split(data, 1.0)
    with pytest.raises(ValueError, match="forget set is empty"):
        ClassifierSplit(
            data,
            torch.empty(0, dtype=torch.int64),
            torch.arange(len(data.y_train)),
            scenario="random",
        )
    with pytest.raises(ValueError, match="scenario must be 'class' or 'random'"):
        digits_split("classes")  # type: ignore[arg-type]


# -- terms and metrics on hand-computed values ------------------------------------------
def test_classifier_terms_hand_computed():
    identity = torch.nn.Identity()
    x_f = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    x_r = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    y_r = torch.tensor([0, 2])
    terms = ClassifierTerms()(identity, (x_f, torch.tensor([0, 1])), (x_r, y_r))
    # margins: 1 − 1/3 = 2/3 and 3 − 1 = 2  →  mean of squares (4/9 + 4) / 2
    assert float(terms.objective) == pytest.approx((4 / 9 + 4) / 2, rel=1e-6)
    assert float(terms.constraints["retain"]) == pytest.approx(float(F.cross_entropy(x_r, y_r)))
    assert terms.metrics["forget_acc"] == pytest.approx(0.5)  # argmax 0 (right), 2 (wrong)
    assert terms.metrics["forget_margin"] == pytest.approx((2 / 3 + 2) / 2, rel=1e-6)
    with pytest.raises(TypeError, match=r"forget batch must be an \(x \[B, D\], y \[B\]\) pair"):
        ClassifierTerms()(identity, x_f, (x_r, y_r))


def test_classifier_terms_with_a_support_hand_computed():
    identity = torch.nn.Identity()
    x_f = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    x_r = torch.tensor([[2.0, 0.0, -1.0]])
    support = torch.tensor([True, True, False])  # class 2 is forgotten
    terms = ClassifierTerms(support=support, gap=1.0)(
        identity, (x_f, torch.tensor([2, 2])), (x_r, torch.tensor([0]))
    )
    # row 1: S-logits (1, 0), μ_S = ½, m_S = ½; excluded 0 − ½ + 1 = ½ > 0  →  ¼ + ¼ = ½
    # row 2: S-logits (0, 0), m_S = 0; excluded 3 − 0 + 1 = 4  →  16;  mean (½ + 16) / 2
    assert float(terms.objective) == pytest.approx((0.5 + 16) / 2, rel=1e-6)
    with pytest.raises(TypeError, match="support must be a boolean tensor"):
        ClassifierTerms(support=torch.tensor([1, 1, 0]))
    with pytest.raises(ValueError, match="gap must be a finite number ≥ 0"):
        ClassifierTerms(support=support, gap=float("inf"))


def test_mia_auc_hand_computed():
    members = torch.tensor([0.1, 0.5])
    nonmembers = torch.tensor([0.3, 0.5, 0.9])
    # P(ℓ_non > ℓ_mem) + ½ P(tie) over the 6 pairs: 1, 1, 1, 0, ½, 1  →  4.5 / 6
    assert loss_threshold_mia_auc(members, nonmembers) == pytest.approx(0.75)
    # members with lower loss than every non-member: a perfect attack
    assert loss_threshold_mia_auc(torch.tensor([0.0]), torch.tensor([1.0, 2.0])) == 1.0
    with pytest.raises(ValueError, match="needs members and non-members"):
        loss_threshold_mia_auc(torch.tensor([]), nonmembers)


# -- PDU with the default settings -------------------------------------------------------
def test_class_forgetting_meets_the_bars(original, class_split, class_result):
    before = evaluate_classifier(original, class_split)
    after = evaluate_classifier(class_result.model, class_split)
    retrained = evaluate_classifier(train_retrained(class_split), class_split)
    assert before.forget_acc > 0.95 and retrained.forget_acc < 0.05
    # the forgotten class is predicted like the retrained model does: (almost) never, on the
    # forgotten training examples and on unseen test examples of the class (within 5 points)
    assert after.forget_acc <= retrained.forget_acc + 0.05, (after, retrained)
    assert after.test_acc_forget_class <= retrained.test_acc_forget_class + 0.05
    # the other classes keep their test accuracy (within 2 points)
    assert after.test_acc_other >= before.test_acc_other - 0.02, (after, before)
    # the constraint holds on the full retain set after training (within 1 %)
    assert class_result.epsilon == pytest.approx(1.1 * class_result.initial_retain_loss)
    assert after.retain_loss == pytest.approx(class_result.final_retain_loss, rel=1e-5)
    assert class_result.final_retain_loss <= 1.01 * class_result.epsilon
    assert class_result.history.records[-1].values["retain"] < 2 * class_result.epsilon


def test_flattening_over_all_classes_leaves_class_accuracy_at_chance(original, class_split):
    # the reason class forgetting flattens over the retained classes only: uniform over all C
    # classes gives the forgotten class a 1/C share, so its top-1 accuracy sits near chance
    # instead of the retrained model's ~0
    over_all = unlearn_classifier(original, class_split, flatten_over="all")
    retained = evaluate_classifier(over_all.model, class_split)
    chance = 1 / class_split.num_classes
    assert retained.forget_acc > 0.05
    assert abs(retained.forget_acc - chance) < 0.1, retained.forget_acc


def test_original_model_is_not_modified(original, class_split, class_result):
    assert class_result.model is not original
    assert evaluate_classifier(original, class_split).forget_acc > 0.95


def test_random_forgetting_keeps_the_constraint(original, random_split):
    result = unlearn_classifier(original, random_split)
    before = evaluate_classifier(original, random_split)
    after = evaluate_classifier(result.model, random_split)
    assert math.isfinite(after.mia_auc)
    assert result.final_retain_loss <= 1.01 * result.epsilon, result.constraint_ratio
    assert result.multipliers["retain"] > 0  # the constraint is active in this scenario
    assert after.test_acc >= before.test_acc - 0.02


def test_swapping_the_solver_changes_nothing_else(original, class_split, monkeypatch):
    seen: dict[str, list[int]] = {}

    class Recording(ClassifierTerms):
        def __call__(self, model, forget_batch, retain_batch):
            key = hash((forget_batch[0].sum().item(), retain_batch[0].sum().item()))
            log = seen.setdefault(current, [])
            if not log or log[-1] != key:  # extragradient evaluates each batch twice
                log.append(key)
            return super().__call__(model, forget_batch, retain_batch)

    monkeypatch.setattr(unlearn_module, "ClassifierTerms", Recording)
    results = {}
    for current in ("gda", "extragradient"):
        results[current] = unlearn_classifier(original, class_split, solver=current, epochs=3)
    gda, eg = results["gda"], results["extragradient"]
    assert gda.solver["solver"] == "gda" and eg.solver["solver"] == "extragradient"
    assert seen["gda"] == seen["extragradient"]  # same batches, same order
    assert (gda.epsilon, gda.target, gda.initial_retain_loss) == (
        eg.epsilon,
        eg.target,
        eg.initial_retain_loss,
    )
    assert len(gda.history) == len(eg.history) == 3 * math.ceil(len(class_split.forget_index) / 32)
    assert [r.lr for r in gda.history] == [r.lr for r in eg.history]
    # …but the solver does change the iterates
    differs = any(
        not torch.equal(a, b)
        for a, b in zip(gda.model.parameters(), eg.model.parameters(), strict=True)
    )
    assert differs


def test_bad_unlearning_arguments_are_rejected(original, class_split):
    with pytest.raises(ValueError, match="epsilon must be a finite number > 0"):
        unlearn_classifier(original, class_split, epsilon=-1.0)
    with pytest.raises(ValueError, match="slack must be"):
        unlearn_classifier(original, class_split, slack=-0.1)
    with pytest.raises(ValueError, match="unknown solver 'gdaa'.*Did you mean 'gda'"):
        unlearn_classifier(original, class_split, solver="gdaa")
    with pytest.raises(TypeError, match="split must be a ClassifierSplit"):
        unlearn_classifier(original, copy.copy(class_split.data))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="flatten_over must be 'auto', 'all' or 'retained'"):
        unlearn_classifier(original, class_split, flatten_over="others")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="flatten_over='retained' needs a class-forgetting"):
        unlearn_classifier(original, digits_split("random"), flatten_over="retained")
    with pytest.raises(ValueError, match="gap must be a finite number ≥ 0"):
        unlearn_classifier(original, class_split, gap=-1.0)


def test_mia_auc_is_the_library_auc_with_sklearns_numbers():
    """One AUC in the library: the classifier's attack goes through metrics.mia.mia_auc and
    gives scikit-learn's roc_auc_score (label 1 = member, score −ℓ), ties included."""
    from sklearn.metrics import roc_auc_score

    generator = torch.Generator().manual_seed(0)
    for size_m, size_n in ((5, 7), (40, 25), (1, 300)):
        # rounded to 1 decimal: many ties within and across the two sets
        members = torch.round(torch.rand(size_m, generator=generator) * 10) / 10
        nonmembers = torch.round(torch.rand(size_n, generator=generator) * 10 + 0.2) / 10
        labels = [1] * size_m + [0] * size_n
        scores = (-torch.cat([members, nonmembers])).double().numpy()
        expected = roc_auc_score(labels, scores)
        assert loss_threshold_mia_auc(members, nonmembers) == pytest.approx(expected, abs=1e-12)


def test_the_same_arguments_run_under_every_solver_name(original, class_split):
    """dual_lr and multiplier_init mean the same for every solver: no name needs other
    arguments (the augmented Lagrangian takes dual_lr as its dual step η, penalty c default)."""
    from constrained_unlearn.solvers import SOLVERS

    for name in sorted(SOLVERS):
        result = unlearn_classifier(
            original, class_split, solver=name, epochs=1, multiplier_init=20.0, dual_lr=100.0
        )
        assert result.solver["solver"] == name
        assert result.solver["solver.multiplier_init"] == 20.0
        assert len(result.history) == math.ceil(len(class_split.forget_index) / 32)
        if name == "augmented-lagrangian":
            assert result.solver["solver.dual_lr"] == 100.0
            assert result.solver["solver.penalty"] == 1.0  # its own default, not dual_lr
