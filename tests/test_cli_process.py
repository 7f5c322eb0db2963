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


def _program(body: str) -> subprocess.CompletedProcess[str]:
    code = "from constrained_unlearn.cli import process\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_the_program_ends_after_its_exit_handlers_with_every_stream_flushed():
    done = _program(
        """
        import atexit, sys
        atexit.register(lambda: print("handler ran"))
        def run():
            sys.stdout.write("no newline, still buffered")
            sys.stderr.write("to stderr")
            return 4
        process.run_as_program(run)
        """
    )
    assert done.returncode == 4
    assert done.stdout == "no newline, still buffered" + "handler ran\n"
    assert done.stderr == "to stderr"


def test_the_program_waits_for_a_thread_that_is_still_writing():
    done = _program(
        """
        import threading, time
        def write():
            time.sleep(0.3)
            print("written by the thread", flush=True)
        def run():
            threading.Thread(target=write).start()
            return 0
        process.run_as_program(run)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "written by the thread"


def test_a_command_that_raises_takes_the_ordinary_exit_with_its_traceback():
    done = _program(
        """
        def run():
            raise RuntimeError("the reason")
        process.run_as_program(run)
        """
    )
    assert done.returncode == 1
    assert "RuntimeError: the reason" in done.stderr


def test_a_profiled_program_still_writes_its_profile(tmp_path):
    script = tmp_path / "program.py"
    script.write_text(
        "from constrained_unlearn.cli import process\n"
        "process.run_as_program(lambda: sum(range(1000)) and 0)\n"
    )
    profile = tmp_path / "run.prof"
    done = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(profile), str(script)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert profile.stat().st_size > 0


def test_only_the_main_process_prints_the_run_summary(monkeypatch, capsys):
    from types import SimpleNamespace

    from constrained_unlearn.cli.main import _done

    result = SimpleNamespace(
        constraint_satisfied=True, final_retain_loss=0.5, bounds={"retain": 1.0}, output_dir="o"
    )
    monkeypatch.setenv("RANK", "1")
    _done(result)
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("RANK", "0")
    _done(result)
    assert capsys.readouterr().out.startswith("done: final retain loss 0.5000 within")
