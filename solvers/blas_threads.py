"""One BLAS thread for the small dense matrices of a step.

OpenBLAS (numpy's and scipy's) splits a matrix product of a few dozen rows over all cores.  On a
machine with other work that is ruinous: the threads wait for each other.  Measured on the 2-core
machine at load 2-4: scipy.linalg.expm of a 19 x 19 matrix (the exponential coupling step of ring_ei,
once per particle step) 8.0 ms with OpenBLAS's two threads against 0.03 ms with one; 57 x 57 (the
phi-function block matrix) 7.9 ms against 0.21 ms; `balkin verify models/ring_ei.py` spent most of
its particle time there.  The functions that handle small matrices every step (solvers.exponential,
solvers.fast_spectrum, the field's exponentials) run under :func:`one_blas_thread`; large products
(a dense coupling's matrix-vector product) keep all threads.

threadpoolctl (a run-time dependency: a small pure-Python package that finds the BLAS libraries
loaded in the process and sets their thread count through their own API) does the setting; without it
this is a no-op.  No SymPy.
"""
from __future__ import annotations

import contextlib
import functools

import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS before the libraries are listed)

try:
    from threadpoolctl import ThreadpoolController
except ImportError:                      # pragma: no cover - threadpoolctl is a dependency
    ThreadpoolController = None

_LIBS = None


def blas_libraries() -> list:
    """The BLAS libraries loaded in this process (threadpoolctl controllers; listed once)."""
    global _LIBS
    if _LIBS is None:
        _LIBS = [] if ThreadpoolController is None else \
            list(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _LIBS


@contextlib.contextmanager
def one_blas_thread():
    """Run the block with every BLAS library on one thread, then restore their thread counts
    (about 2 us per library on entry and exit)."""
    libs = blas_libraries()
    saved = [lib.get_num_threads() for lib in libs]
    try:
        for lib, k in zip(libs, saved):
            if k != 1:
                lib.set_num_threads(1)
        yield
    finally:
        for lib, k in zip(libs, saved):
            if k != 1:
                lib.set_num_threads(k)


def small_matrices(fn):
    """Decorator: ``fn`` works on small dense matrices and runs under :func:`one_blas_thread`."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with one_blas_thread():
            return fn(*args, **kwargs)
    return wrapped
