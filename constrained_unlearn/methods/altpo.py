"""AltPO: alternate preference optimisation (Mekala et al. 2024, "Alternate Preference
Optimization for Unlearning Factual Knowledge in Large Language Models", arXiv 2409.13474;
COLING 2025).

Negative feedback on the forget answer ``y`` combined with positive feedback on a plausible
*alternate* answer ``ỹ`` to the same question (other facts, same kind of answer), as DPO:

    Δ_b = [s_θ(ỹ_b|x_b) − s_ref(ỹ_b|x_b)] − [s_θ(y_b|x_b) − s_ref(y_b|x_b)]
    L_f = −(2/β) · mean_b log σ(β Δ_b)

which is how open-unlearning runs it (its ``DPO`` trainer with the alternates as preferred
answers, β ∈ {0.05, 0.1, 0.5}, α ∈ {1, 2, 5}).

Alternate answers. The paper generates them with the model itself (sampling "another version
of the answer with alternate plausible facts"). Here they are data: ``alternates`` maps each
forget answer to one or more alternates, and [`alternates_from_rows`][constrained_unlearn.methods.alternates_from_rows] builds that map from
TOFU-format rows, by default from TOFU's (and mini-TOFU's) ``perturbed_answer`` column of the
``forgetXX_perturbed`` split: same template, wrong facts — what AltPO's alternates are. Caveat:
TOFU's truth ratio (and so forget quality) scores the same perturbed answers, so training on
them flatters that metric; for numbers to report, generate alternates (e.g. with
[`generate_batched`][constrained_unlearn.llm.generate_batched]) and pass them instead.

Row ``b`` is matched by its answer token ids (answers are tokenised on their own, so the ids do
not depend on the prompt template); with several alternates it gets alternate
``k = crc32(prompt ids) mod K``, the same on every rank, epoch and resume.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from constrained_unlearn.jsonl import parse_json_lines
from constrained_unlearn.llm.terms import ForgetObjective
from constrained_unlearn.methods.base import Method, check_number
from constrained_unlearn.methods.idk_dpo import encode_answer, pad_id
from constrained_unlearn.methods.preference import preference_objective, prompt_key

__all__ = ["AltPO", "alternates_from_rows", "load_alternates"]


def alternates_from_rows(
    rows: Any, answer_key: str = "answer", alternate_key: str = "perturbed_answer"
) -> dict[str, list[str]]:
    """``{answer: [alternate, …]}`` from rows carrying both columns (a string or a list each).

    Args:
        rows: dicts or a ``datasets.Dataset`` (e.g. TOFU's ``forget10_perturbed``).
        answer_key: column of the forget answer.
        alternate_key: column of the alternates (``"perturbed_answer"``; or
            ``"alternate"`` for files generated the open-unlearning way).
    """
    out: dict[str, list[str]] = {}
    for i in range(len(rows)):
        row = rows[i]
        if answer_key not in row or alternate_key not in row:
            raise KeyError(
                f"row {i} lacks {answer_key!r} or {alternate_key!r} (keys: {sorted(row)}); "
                "use a split with alternate answers (TOFU: forgetXX_perturbed)"
            )
        value = row[alternate_key]
        alternates = [value] if isinstance(value, str) else list(value)
        out.setdefault(str(row[answer_key]), []).extend(str(a) for a in alternates)
    return out


def load_alternates(path: str | Path) -> dict[str, list[str]]:
    """Read alternates from JSON: ``{answer: [alternates]}`` or a list of rows with
    ``answer`` and ``alternate`` (or ``perturbed_answer``); ``.jsonl``: one row a line."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"AltPO alternates file {str(p)!r} does not exist")
    data: Any
    try:
        text = p.read_text(encoding="utf-8")
        data = parse_json_lines(text) if p.suffix == ".jsonl" else json.loads(text)
    except ValueError as err:  # JSON that does not parse, or bytes that are not UTF-8
        raise ValueError(
            f"AltPO alternates file {str(p)!r} cannot be read as JSON ({err}); check the file is "
            "complete and valid"
        ) from None
    if isinstance(data, dict):
        return {str(k): [v] if isinstance(v, str) else list(v) for k, v in data.items()}
    key = "alternate" if data and "alternate" in data[0] else "perturbed_answer"
    return alternates_from_rows(data, alternate_key=key)


@dataclass(frozen=True)
class _Alternate:
    """``choose(prompt, answer)``: an alternate of ``answer`` (by its ids)."""

    table: Mapping[tuple[int, ...], tuple[tuple[int, ...], ...]]
    decode: Any = field(default=None, compare=False)

    def __call__(self, prompt: list[int], answer: list[int]) -> Sequence[int]:
        options = self.table.get(tuple(answer))
        if not options:
            shown = self.decode(answer) if self.decode is not None else answer
            raise ValueError(
                f"AltPO has no alternate answer for the forget answer {str(shown)[:80]!r}: give "
                "alternates for every forget answer (alternates={answer: [alternate, …]}, e.g. "
                "alternates_from_rows(<forgetXX_perturbed rows>))"
            )
        return options[prompt_key(prompt) % len(options)]


@dataclass
class AltPO(Method):
    """AltPO (Mekala et al. 2024, arXiv 2409.13474): DPO toward alternate answers.

        L(θ) = −(2/β) · mean_b log σ(β Δ_b) + λ · NLL_r(θ)
        Δ_b  = [s_θ(ỹ_b|x_b) − s_ref(ỹ_b|x_b)] − [s_θ(y_b|x_b) − s_ref(y_b|x_b)]

    ``ỹ_b``: an alternate of the forget answer ``y_b`` (see the module docstring for where they
    come from). Needs the tokenizer and θ_ref. Metrics: ``dpo_margin``, ``alternate_nll``.

    Attributes:
        alternates: ``{forget answer: [alternate answers]}``, or the path of a JSON / JSONL
            file ([`load_alternates`][constrained_unlearn.methods.load_alternates]). Required.
        beta: β > 0 (0.1, the middle of open-unlearning's grid).
        retain_weight: λ (1.0, open-unlearning's α grid starts at 1).
    """

    name: ClassVar[str] = "altpo"
    paper: ClassVar[str] = "Mekala et al. 2024, arXiv 2409.13474"
    uses_reference: ClassVar[bool] = True

    retain_weight: float = 1.0
    beta: float = 0.1
    alternates: Mapping[str, Sequence[str]] | str | None = None

    def validate(self) -> None:
        super().validate()
        check_number("beta", self.beta, minimum=0.0, strict=True)
        if isinstance(self.alternates, (str, Path)):
            self.alternates = load_alternates(self.alternates)
        if self.alternates is not None:
            if not isinstance(self.alternates, Mapping):
                raise ValueError(
                    "alternates must map each forget answer to its alternate answers "
                    f"({{answer: [alternate, …]}}) or name a JSON file, got "
                    f"{type(self.alternates).__name__}"
                )
            table = {}
            for answer, alts in self.alternates.items():
                alts = [alts] if isinstance(alts, str) else list(alts)
                if not alts or not all(isinstance(a, str) and a.strip() for a in alts):
                    raise ValueError(
                        f"alternates of {str(answer)[:60]!r} must be non-empty strings"
                    )
                table[str(answer)] = alts
            self.alternates = table

    def options(self) -> dict[str, Any]:
        out = super().options()
        out["alternates"] = len(self.alternates or {})  # a count, not the whole table
        return out

    def forget_objective(self, tokenizer: Any | None = None) -> ForgetObjective:
        if tokenizer is None:
            raise ValueError("AltPO needs the tokenizer to encode its alternate answers")
        source = self.alternates
        if not isinstance(source, Mapping) or not source:
            raise ValueError(
                "AltPO needs alternate answers: pass alternates={forget answer: [alternate, …]} "
                "(e.g. alternates_from_rows(<TOFU forgetXX_perturbed rows>)) or the path of a "
                "JSON file of them"
            )
        table: dict[tuple[int, ...], tuple[tuple[int, ...], ...]] = {}
        for answer, alts in source.items():
            key = tuple(encode_answer(tokenizer, answer))
            table[key] = table.get(key, ()) + tuple(
                tuple(encode_answer(tokenizer, a)) for a in alts
            )
        choose = _Alternate(table, getattr(tokenizer, "decode", None))
        return preference_objective("altpo", choose, pad_id(tokenizer), self.beta, "alternate_nll")
