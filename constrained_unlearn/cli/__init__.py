"""The ``constrained-unlearn`` command line (`constrained_unlearn.cli.main`)."""

__all__: list[str] = []
