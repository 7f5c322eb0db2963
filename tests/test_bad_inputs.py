"""Every catalogued bad input fails with its documented message and writes nothing."""

from pathlib import Path

import pytest
from bad_input_catalogue import CATALOGUE, render

DOCS = Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md"


def test_catalogue_is_large_and_covers_every_area():
    assert len(CATALOGUE) >= 20
    assert {e.area for e in CATALOGUE} >= {"config", "data", "model", "evaluation", "engine"}


@pytest.mark.parametrize("entry", CATALOGUE, ids=[f"{e.area}: {e.what}" for e in CATALOGUE])
def test_bad_input(entry, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(entry.error, match=entry.message):
        entry.call(scratch)
    assert list(scratch.iterdir()) == []  # nothing written, nothing half-written


def test_troubleshooting_page_is_rendered_from_the_catalogue():
    assert DOCS.read_text() == render(), (
        "run: python tests/bad_input_catalogue.py > docs/troubleshooting.md"
    )
