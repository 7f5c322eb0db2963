"""Every catalogued bad input fails with its documented message and exit status, writes
nothing, and leaves no MLflow run RUNNING."""

from pathlib import Path

import pytest
from bad_input_catalogue import CATALOGUE, render

from constrained_unlearn.cli.errors import describe

DOCS = Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md"


def test_catalogue_is_large_and_covers_every_area():
    assert len(CATALOGUE) >= 20
    assert {e.area for e in CATALOGUE} >= {"config", "data", "model", "evaluation", "engine"}


@pytest.mark.parametrize("entry", CATALOGUE, ids=[f"{e.area}: {e.what}" for e in CATALOGUE])
def test_bad_input(entry, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    with pytest.raises(entry.error, match=entry.message) as caught:
        entry.call(scratch)
    assert list(scratch.iterdir()) == []  # nothing written, nothing half-written
    report = describe(caught.value)
    assert report.status == entry.status, report.message
    assert len(report.message.splitlines()) <= 2
    if store.exists():
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{store}")
        experiments = [e.experiment_id for e in client.search_experiments()]
        assert all(run.info.status != "RUNNING" for run in client.search_runs(experiments))


def test_troubleshooting_page_is_rendered_from_the_catalogue():
    assert DOCS.read_text() == render(), (
        "run: python tests/bad_input_catalogue.py > docs/troubleshooting.md"
    )
