"""Refusal answers used as the preferred response of [`IdkDPO`][constrained_unlearn.methods.IdkDPO].

TOFU (Maini et al. 2024, arXiv 2401.06121) trains its "IDK" baselines toward answers of the form
"I don't know"; these 32 strings were written for this library. Each one is a complete answer:
it refuses, makes no claim about the question's subject and ends with a full stop.
"""

from __future__ import annotations

REFUSALS: tuple[str, ...] = (
    "I'm not sure about that.",
    "I don't know.",
    "I don't know the answer to that.",
    "I have no information about that.",
    "I'm afraid I can't answer that.",
    "That is something I don't know.",
    "I'm not able to answer that question.",
    "I have no idea.",
    "I can't say for certain.",
    "I'm unable to help with that.",
    "I don't have that information.",
    "Sorry, I don't know.",
    "I'm not familiar with that.",
    "That is not something I can tell you.",
    "I really couldn't say.",
    "I have nothing reliable to share about that.",
    "I don't have an answer for that.",
    "That is beyond what I know.",
    "I'm not aware of the answer.",
    "I don't recall anything about that.",
    "Unfortunately, I don't know.",
    "I cannot answer that question.",
    "I'm not the right source for that.",
    "I lack the knowledge to answer that.",
    "I'm not certain, so I won't guess.",
    "That question is outside what I know.",
    "I have no knowledge of that.",
    "I can't provide an answer to that.",
    "I'd rather not guess; I don't know.",
    "Nothing I know answers that.",
    "I'm sorry, but I don't have that answer.",
    "I couldn't tell you.",
)
"""The default refusal answers (32 strings)."""

__all__ = ["REFUSALS"]
