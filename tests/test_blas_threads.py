"""solvers.blas_threads: the small-matrix functions run with one BLAS thread and restore the count."""
import numpy as np
import pytest

from solvers import blas_threads, exponential, fast_spectrum


def test_one_blas_thread_sets_and_restores():
    libs = blas_threads.blas_libraries()
    if not libs:
        pytest.skip("no BLAS library found by threadpoolctl")
    before = [lib.get_num_threads() for lib in libs]
    seen = []
    with blas_threads.one_blas_thread():
        seen = [lib.get_num_threads() for lib in libs]
    assert seen == [1] * len(libs)
    assert [lib.get_num_threads() for lib in libs] == before


def test_restored_after_an_exception():
    libs = blas_threads.blas_libraries()
    before = [lib.get_num_threads() for lib in libs]
    with pytest.raises(ZeroDivisionError):
        with blas_threads.one_blas_thread():
            1 / 0
    assert [lib.get_num_threads() for lib in libs] == before


def test_the_step_functions_see_one_thread(monkeypatch):
    """phi_functions and the fast-spectrum eigenvalues call their LAPACK/BLAS work on one thread."""
    libs = blas_threads.blas_libraries()
    if not libs:
        pytest.skip("no BLAS library found by threadpoolctl")
    counts = []
    real_expm, real_eigvals = exponential.expm, np.linalg.eigvals
    monkeypatch.setattr(exponential, "expm", lambda A: (counts.append(libs[0].get_num_threads()), real_expm(A))[1])
    Z = np.array([[-1.0, 0.5], [0.2, -2.0]])
    E, P1, P2 = exponential.phi_functions(Z)
    np.testing.assert_allclose(Z @ P1 + np.eye(2), E, atol=1e-13)     # e^Z = I + Z phi_1(Z)
    ref = np.sort(np.linalg.eigvals(Z).real)
    monkeypatch.setattr(fast_spectrum.np.linalg, "eigvals",
                        lambda M: (counts.append(libs[0].get_num_threads()), real_eigvals(M))[1])
    w = fast_spectrum.eigenvalues(Z)
    np.testing.assert_allclose(np.sort(w.real), ref)
    assert counts == [1, 1]
