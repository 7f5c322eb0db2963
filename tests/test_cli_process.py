"""The program's collector policy (cli/process.py): only when it owns the process."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

from constrained_unlearn.cli import process


def test_loading_leaves_the_collector_alone_in_someone_elses_process():
    frozen = gc.get_freeze_count()
    assert not process.owns_process()
    with process.loading():
        assert gc.isenabled()
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_the_program_pauses_collection_while_loading_then_freezes_and_keeps_its_status():
    code = textwrap.dedent(
        """
        import gc
        from constrained_unlearn.cli import process

        def run():
            assert process.owns_process()
            with process.loading():
                assert not gc.isenabled()
                loaded = [[i] for i in range(1000)]
            assert gc.isenabled()
            assert gc.get_freeze_count() >= len(loaded)
            print("ran")
            return 3

        process.run_as_program(run)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip() == "ran"


def test_python_dash_m_reports_the_version_through_the_entry():
    done = subprocess.run(
        [sys.executable, "-m", "constrained_unlearn", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
