"""``python -m constrained_unlearn …``: the same program as the ``constrained-unlearn`` command."""

from __future__ import annotations

__all__: list[str] = []

if __name__ == "__main__":
    from constrained_unlearn.cli.main import entry

    entry()
