"""The command line reports every known failure in one or two lines, with the fix, exit status 2
(input) or 1 (runtime), a traceback only with --debug, and checks before any compute."""

from __future__ import annotations

import errno
import json
import socket
import time

import pytest
from bad_input_catalogue import llm_fixtures

from constrained_unlearn.cli.errors import describe
from constrained_unlearn.cli.main import main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(capsys, *argv):
    capsys.readouterr()  # drop what fixtures printed
    start = time.perf_counter()
    status = main(list(argv))
    elapsed = time.perf_counter() - start
    captured = capsys.readouterr()
    return status, captured.err, elapsed


def _assert_short(err: str) -> None:
    """The report: one or two lines from ``error:`` on (info lines before it are progress)."""
    lines = [line for line in err.splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert starts, err
    lines = lines[starts[0] :]
    assert 1 <= len(lines) <= 2, err
    assert lines[0].startswith("error:"), err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.seed=abc", r"training.seed must be an integer, got 'abc'"),
        ("output.dir=", r"output.dir must be a string, got null \(an empty value\)"),
        ("training.epochs=true", r"training.epochs must be an integer, got True"),
        ("training.max_steps=2.5", r"training.max_steps must be an integer or null, got 2.5"),
        ("method.slack=yes", r"method.slack must be a number, got True"),
        (
            "tracking.tracking_uri=sqllite:///x.db",
            r"unknown scheme 'sqllite' \(did you mean 'sqlite'\?\)",
        ),
        ("training.checkpoint_dir=/tmp/x", r"training.checkpoint_dir is set by the recipe"),
    ],
)
def test_input_errors_are_one_line_with_exit_2(capsys, tmp_path, override, message):
    import re

    status, err, _ = _run(capsys, "unlearn", f"output.dir={tmp_path / 'out'}", override)
    assert status == 2
    _assert_short(err)
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_unreachable_tracking_server_is_found_before_any_compute(capsys, tmp_path):
    port = _free_port()
    status, err, elapsed = _run(
        capsys,
        "unlearn",
        f"output.dir={tmp_path / 'out'}",
        f"tracking.tracking_uri=http://127.0.0.1:{port}/",
    )
    assert status == 2 and elapsed < 10
    _assert_short(err)
    assert f"the MLflow server at 'http://127.0.0.1:{port}/' does not answer" in err


def test_output_folder_under_a_file(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    status, err, _ = _run(capsys, "unlearn", f"output.dir={tmp_path / 'file' / 'out'}")
    assert status == 2
    _assert_short(err)
    assert "is a file; choose another folder with output.dir=PATH" in err


def test_read_only_output_folder_is_found_before_any_compute(capsys, tmp_path, monkeypatch):
    # as root chmod does not stop writes: the probe's write fails as on a read-only folder
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    status, err, elapsed = _run(capsys, "unlearn", f"output.dir={tmp_path / 'ro'}")
    assert status == 2 and elapsed < 10
    _assert_short(err)
    assert "cannot be written (Read-only file system)" in err


def test_duplicate_yaml_key_names_key_and_lines(capsys, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("training:\n  lr: 1.0e-5\n  epochs: 2\n  lr: 2.0e-5\n")
    status, err, _ = _run(capsys, "unlearn", "--config", str(config))
    assert status == 2
    _assert_short(err)
    assert "key 'lr' appears twice in the same mapping (lines 2 and 4)" in err


def test_unknown_config_name(capsys):
    status, err, _ = _run(capsys, "unlearn", "--config", "tofu_llama32_1b_pdx")
    assert status == 2
    _assert_short(err)
    assert "Did you mean 'tofu_llama32_1b_pdu'?" in err


def test_debug_prints_the_traceback(capsys, tmp_path):
    status, err, _ = _run(capsys, "--debug", "unlearn", "training.seed=abc")
    assert status == 2
    assert "Traceback" in err and "training.seed must be an integer" in err
    status, err, _ = _run(capsys, "unlearn", "--debug", "training.seed=abc")  # after the command
    assert status == 2 and "Traceback" in err


@pytest.fixture
def model_dir(tmp_path):
    fixtures = llm_fixtures()
    tok = fixtures.build_tokenizer()
    model = fixtures.build_model("llama", tok)
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def _runs(tmp_path):
    from mlflow.tracking import MlflowClient

    if not (tmp_path / "mlflow.db").exists():
        return []
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_truncated_jsonl_is_one_line_and_leaves_no_run(capsys, tmp_path, model_dir):
    data = tmp_path / "tofu"
    data.mkdir()
    rows = [json.dumps({"question": f"q{i}", "answer": f"a{i}"}) for i in range(4)]
    (data / "forget10.jsonl").write_text("\n".join(rows) + "\n")
    (data / "retain90.jsonl").write_text("\n".join(rows) + '\n{"question": "q9", "ans')
    status, err, _ = _run(
        capsys,
        "unlearn",
        f"model.name_or_path={model_dir}",
        "data.benchmark=tofu",
        f"data.path={data}",
        f"output.dir={tmp_path / 'out'}",
        f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
    )
    assert status == 2
    _assert_short(err)
    assert "retain90.jsonl cannot be read as json" in err and "truncated" in err
    assert all(run.info.status != "RUNNING" for run in _runs(tmp_path))


def test_offline_dataset_id_is_one_line(capsys, tmp_path, model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    status, err, elapsed = _run(
        capsys,
        "unlearn",
        f"model.name_or_path={model_dir}",
        "data.benchmark=tofu",
        "data.path=someorg/NOT_A_DATASET",
        f"output.dir={tmp_path / 'out'}",
        "tracking.enabled=false",
    )
    assert status == 2 and elapsed < 10
    _assert_short(err)
    for part in ("'someorg/NOT_A_DATASET'", "data.path=", "HF_HUB_OFFLINE"):
        assert part in err


def test_unreachable_hub_model_id_fails_in_seconds(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_free_port()}")
    status, err, elapsed = _run(
        capsys, "eval", "--model", "someorg/not-a-model", "--output-dir", str(tmp_path / "ev")
    )
    assert status == 2 and elapsed < 10
    _assert_short(err)
    for part in ("'someorg/not-a-model'", "cannot be reached", "local folder", "HF_HUB_OFFLINE"):
        assert part in err


# ------------------------------------------------------------------------ describe() directly
def _caught(fn):
    try:
        fn()
    except BaseException as err:  # noqa: BLE001
        return err
    raise AssertionError("no error raised")


def test_checkpoint_error_is_a_runtime_failure():
    from constrained_unlearn.engine.checkpoint import CheckpointError

    report = describe(CheckpointError("checkpoint-3 is damaged: model.safetensors checksum"))
    assert report.status == 1
    assert report.message == "error: checkpoint-3 is damaged: model.safetensors checksum"


def test_unknown_method_option_is_an_input_error():
    from constrained_unlearn.methods import get_method

    err = _caught(lambda: get_method("npo", betaa=0.1))
    report = describe(err)
    assert report.status == 2, report
    assert "betaa" in report.message and "\n" not in report.message


def test_dependency_errors():
    import numpy as np

    report = describe(_caught(lambda: np.int64("abc")))  # a raw cast error from numpy
    assert report.status == 1
    assert "--debug" in report.message and len(report.message.splitlines()) == 2
    full = describe(OSError(errno.ENOSPC, "No space left on device", "/out/model"))
    assert full.status == 1
    assert full.message.splitlines() == [
        "error: No space left on device (/out/model)",
        "  fix: free disk space or choose another output.dir",
    ]
    from mlflow.exceptions import MlflowException

    mlflow_report = describe(MlflowException("API request to endpoint failed"))
    assert mlflow_report.status == 1 and "tracking.enabled=false" in mlflow_report.message
    assert describe(KeyboardInterrupt()).status == 130


def test_a_local_eval_file_that_does_not_parse_names_its_line(tmp_path):
    from constrained_unlearn.benchmarks._source import DataFileError
    from constrained_unlearn.benchmarks.tofu import tofu_eval_data

    folder = tmp_path
    good = json.dumps({"question": "q", "answer": "a"})
    (folder / "forget10.jsonl").write_text(good + "\n\n" + good + '\n{"question": "q9", "ans')
    with pytest.raises(DataFileError, match=r"forget10.jsonl cannot be read as json \(line 4: "):
        tofu_eval_data(folder, ["forget10"])
    (folder / "forget10.jsonl").write_bytes(b'{"question": "\xff"}\n')
    with pytest.raises(DataFileError, match="cannot be read as json"):
        tofu_eval_data(folder, ["forget10"])
