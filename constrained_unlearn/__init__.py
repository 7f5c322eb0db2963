"""constrained_unlearn."""
