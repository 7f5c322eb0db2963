"""The shared JSON Lines reader: values line by line, the failing line named."""

from __future__ import annotations

import pytest

from constrained_unlearn.jsonl import parse_json_lines


def test_values_one_per_line_blank_lines_skipped():
    assert parse_json_lines('{"a": 1}\n\n[2, 3]\n"x"\n') == [{"a": 1}, [2, 3], "x"]
    assert parse_json_lines("") == []


def test_the_first_line_that_does_not_parse_is_named():
    with pytest.raises(ValueError, match=r"^line 3: Unterminated string"):
        parse_json_lines('{"a": 1}\n\n{"b": "cut')
