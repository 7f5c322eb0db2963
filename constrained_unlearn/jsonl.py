"""JSON Lines text read into Python values (standard library only, so any layer may use it).

A line that does not parse is an error naming its line number; blank lines are skipped. Used
by the local TOFU reader (`constrained_unlearn.benchmarks.tofu`) and AltPO's alternates files
(`constrained_unlearn.methods.altpo`), which each say which file it was.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["parse_json_lines"]


def parse_json_lines(text: str) -> list[Any]:
    """One JSON value per non-empty line of ``text``.

    Raises:
        ValueError: ``"line N: <the parser's reason>"`` for the first line that does not parse
            (e.g. the last line of a copy cut short).
    """
    values = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"line {number}: {err}") from None
    return values
