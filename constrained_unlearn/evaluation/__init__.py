"""Evaluation: TOFU / MUSE metrics as pure functions (``metrics``) and the evaluators above them.

Evaluation never imports the engine. Every number it reports names the convention that produced
it (see ``metrics.conventions``).
"""
