"""The training engine: primal-dual steps on accelerate; knows no LLM and no classifier."""
