"""The ``constrained-unlearn`` command line (:mod:`constrained_unlearn.cli.main`)."""

__all__: list[str] = []
