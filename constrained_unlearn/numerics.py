"""Reproducible CPU numerics: the same floating-point results on x86-64 machines with AVX2.

A float32 training run is a chaotic map: a difference in the last bit of one matrix product
grows, over a thousand optimiser steps, into a different model. On the CPU the bits depend
on which kernels run, and torch picks them from the processor it finds:

* ATen's vectorised kernels (softmax, norms, element-wise maths, attention) are compiled for
  several instruction sets and chosen at start-up (``torch.backends.cpu.get_cpu_capability()``:
  ``AVX512`` on the reference machine, ``AVX2`` on most others);
* MKL's matrix products take a code path per processor family unless its *conditional
  numerical reproducibility* mode (``MKL_CBWR``) fixes one;
* oneDNN does the same, bounded by ``ONEDNN_MAX_CPU_ISA``.

Measured on the reference machine (AMD EPYC, AVX-512; 3 epochs of the default mini-TOFU
target): the native kernels and the AVX2-pinned kernels give different weights (different
SHA-256), at the same speed (17.7 s vs 16.6 s). So a mini-TOFU build, and every number
measured on it, differed between machines that differ only in their processor.

`pin_cpu_numerics` fixes all three to AVX2, which every x86-64 processor of the last decade
runs, so that a build or an unlearning run with the same seed and thread count gives the same
floats on any of them (MKL guarantees it for ``MKL_CBWR=AVX2`` at a fixed thread count; ATen's
AVX2 kernels are the same code everywhere). It only sets what the user has not set, and only
before torch is imported (the choices are read once, at start-up). Other architectures
(Apple silicon, ARM servers) and GPUs keep their own numerics; `describe_cpu_numerics` says
which were in force, and mini-TOFU / mini-MUSE builds key their cache on it.

The ``demo`` command and the benchmark scripts that produce documented numbers pin; library
calls never do (your process, your kernels).
"""

from __future__ import annotations

import os
import platform
import sys

__all__ = [
    "DOCUMENTED_THREADS",
    "PINNED_ENVIRONMENT",
    "describe_cpu_numerics",
    "is_pinned",
    "pin_cpu_numerics",
]

PINNED_ENVIRONMENT: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}
"""The variables `pin_cpu_numerics` sets (each only when unset)."""

DOCUMENTED_THREADS = 2
"""torch's thread count of the documented numbers (the demo's default): reductions split by
thread, so the thread count is part of what a seed reproduces."""

_X86_64 = ("x86_64", "amd64")


def pin_cpu_numerics() -> bool:
    """Pin torch's CPU kernels to AVX2 (`PINNED_ENVIRONMENT`), if this process still can.

    Returns:
        ``True`` when the process will run the pinned kernels: an x86-64 machine, torch not
        yet imported, and any of the variables the user set already equal to the pinned
        value. ``False`` otherwise (nothing is changed then, except the variables that were
        unset).
    """
    if platform.machine().lower() not in _X86_64 or "torch" in sys.modules:
        return False
    for name, value in PINNED_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    return all(os.environ[k].lower() == v.lower() for k, v in PINNED_ENVIRONMENT.items())


def describe_cpu_numerics() -> dict[str, str]:
    """Which CPU kernels this process runs: ``{"machine", "cpu_capability", "mkl_cbwr"}``.

    ``cpu_capability`` is ATen's choice (``"AVX2"``, ``"AVX512"``, ``"DEFAULT"`` …),
    ``mkl_cbwr`` MKL's reproducibility branch (``"native"`` when unset). Two processes with
    equal descriptions, seeds and thread counts compute the same floats.
    """
    import torch

    return {
        "machine": platform.machine().lower(),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "mkl_cbwr": os.environ.get("MKL_CBWR", "native"),
    }


def is_pinned(described: dict[str, str] | None = None) -> bool:
    """Whether a `describe_cpu_numerics` result (default: this process's) is the pinned set:
    an x86-64 machine running ATen's AVX2 kernels with ``MKL_CBWR=AVX2``."""
    d = describe_cpu_numerics() if described is None else described
    return (
        d["machine"] in _X86_64
        and d["cpu_capability"].upper() == PINNED_ENVIRONMENT["ATEN_CPU_CAPABILITY"].upper()
        and d["mkl_cbwr"].upper() == PINNED_ENVIRONMENT["MKL_CBWR"]
    )
