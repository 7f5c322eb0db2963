"""Loss functions: pure functions of logits, log-probabilities and masks.

Nothing here knows about a model or a dataset. Every function documents the shapes it takes
and reduces over exactly the positions its mask selects.
"""

from constrained_unlearn.losses.divergence import kl_to_reference, soft_cross_entropy
from constrained_unlearn.losses.entropy import kl_to_uniform_loss, negative_entropy_loss
from constrained_unlearn.losses.margin import (
    margin_flattening_loss,
    margin_per_position,
    support_margin_loss,
    support_margin_per_position,
)
from constrained_unlearn.losses.masking import masked_mean, next_token_alignment
from constrained_unlearn.losses.nll import sequence_log_prob, token_log_probs, token_nll
from constrained_unlearn.losses.preference import dpo_loss, npo_loss, simnpo_loss
from constrained_unlearn.losses.token_weighted import (
    ceu_loss,
    ceu_targets,
    satimp_loss,
    undial_loss,
    undial_targets,
    weighted_ascent_loss,
    wga_loss,
)

__all__ = [
    "ceu_loss",
    "ceu_targets",
    "dpo_loss",
    "kl_to_reference",
    "kl_to_uniform_loss",
    "margin_flattening_loss",
    "margin_per_position",
    "masked_mean",
    "negative_entropy_loss",
    "next_token_alignment",
    "npo_loss",
    "satimp_loss",
    "sequence_log_prob",
    "simnpo_loss",
    "soft_cross_entropy",
    "support_margin_loss",
    "support_margin_per_position",
    "token_log_probs",
    "token_nll",
    "undial_loss",
    "undial_targets",
    "weighted_ascent_loss",
    "wga_loss",
]
