"""How the ``constrained-unlearn`` program treats Python's cyclic garbage collector.

A process that imports torch and transformers and loads a model holds ~0.4 M long-lived
objects (modules, classes, the model). Python's generational collector walks all of them at
every oldest-generation collection, and the interpreter's shutdown runs several full
collections: on the 2-core reference machine that was 0.7 s of collections during one
mini-TOFU evaluation and ~1 s at exit (docs/benchmarks.md, "Start-up"). Nothing in those objects
is garbage, so the program

* pauses the collector while it imports and loads (`loading`), then moves everything that
  exists into the permanent generation (``gc.freeze``), which later collections skip;
* freezes again just before the interpreter exits (`run_as_program`), so shutdown does not walk the
  heap (memory goes back to the operating system with the process either way);
* ends the process without the interpreter's teardown once the command has returned and nothing
  else is running (`finish`): the exit handlers still run (logging, MLflow, tqdm, temporary
  folders, ``weakref.finalize``) and every output stream is flushed, but the ~0.3 s of tearing
  down modules and freeing a loaded model object by object is skipped. When another
  non-daemon thread is still alive (a worker pool, a writer), the command raised, or a
  profiler or tracer is attached (``python -m cProfile``, a debugger, coverage), the ordinary
  exit runs instead, so nothing that is still being written or measured is cut short.

Reference counting still frees every object as usual; only cycles created *before* a freeze
are never collected, and those are the imported modules and the loaded model. This applies only
when the program owns its process (`run_as_program`: the console script and ``python -m``); calling
`constrained_unlearn.cli.main.main` from your own code or a test leaves the collector alone.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["finish", "loading", "owns_process", "run_as_program"]

_owned = False


def owns_process() -> bool:
    """True when the program was started as ``constrained-unlearn`` / ``python -m``."""
    return _owned


@contextmanager
def loading() -> Iterator[None]:
    """Imports and model loading: collector paused, the result frozen (program only)."""
    if not _owned:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _others_running() -> bool:
    main = threading.main_thread()
    return any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate())


def _observed() -> bool:
    """A profiler or tracer is attached: it writes its report after the program returns."""
    return sys.getprofile() is not None or sys.gettrace() is not None


def _flush_c_streams() -> None:
    """Flush the C library's stdio buffers (what an extension printed with ``printf``)."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no libc to ask (not POSIX): nothing buffered
        pass


def finish(status: int | None) -> None:
    """End the program with ``status``: exit handlers run and streams are flushed, then the
    process ends without the interpreter's teardown; the ordinary ``sys.exit`` if another
    non-daemon thread is still running or a profiler or tracer is attached (module
    docstring)."""
    code = 0 if status is None else int(status)
    if _others_running() or _observed():
        sys.exit(code)
    atexit._run_exitfuncs()  # what the interpreter's exit would run first, in the same order
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # closed or replaced: nothing to flush
            pass
    _flush_c_streams()
    os._exit(code)


def run_as_program(run: Callable[[], int]) -> None:
    """Run ``run`` as the program that owns this process (the console script, ``python -m``,
    a benchmark that times what a command does): freeze the heap, exit with its status
    (`finish`); an exception from ``run`` takes the ordinary exit, traceback and all."""
    global _owned
    _owned = True
    try:
        status = run()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        gc.freeze()
    finish(status)
