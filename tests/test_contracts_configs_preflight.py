"""Bundled configs are found by name; the tracking store is checked before any compute."""

import socket

import pytest

from constrained_unlearn.configs import available_configs, bundled_config_path, resolve_config
from constrained_unlearn.tracking.preflight import TrackingStoreError, check_tracking_store


def test_bundled_configs_by_name(tmp_path):
    names = available_configs()
    assert {"tofu_llama32_1b_pdu", "muse_news_pdu", "accelerate/fsdp"} <= set(names)
    assert bundled_config_path("tofu_llama32_1b_pdu.yaml") == names["tofu_llama32_1b_pdu"]
    local = tmp_path / "mine.yaml"
    local.write_text("method: {name: pdu}\n")
    assert resolve_config(local) == local
    assert resolve_config("muse_news_pdu") == names["muse_news_pdu"]
    with pytest.raises(ValueError, match=r"Did you mean 'muse_news_pdu'"):
        resolve_config("muse_news_pd")


def test_unknown_scheme_is_named_with_the_nearest():
    with pytest.raises(
        TrackingStoreError, match=r"unknown scheme 'sqllite' \(did you mean 'sqlite'"
    ):
        check_tracking_store("sqllite:///x.db")


def test_local_store_in_a_folder_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")  # no process, root included, can create a folder under it
    with pytest.raises(TrackingStoreError, match="cannot be written"):
        check_tracking_store(f"sqlite:///{blocker}/runs/mlflow.db")
    assert check_tracking_store(f"sqlite:///{tmp_path}/new/mlflow.db").startswith("sqlite")


def test_dead_server_fails_fast():
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TrackingStoreError, match="does not answer"):
        check_tracking_store(f"http://127.0.0.1:{port}", timeout_s=2.0)
