"""The scalar normal CDF of the compiled step (solvers.numba_runtime._ndtr): its Mills-ratio table is
the one tests/mills_table.py makes, and it is as accurate as scipy.special.ndtr (against 40-digit
mpmath values), so the compiled and NumPy paths differ by rounding only."""
import mpmath as mp
import numba
import numpy as np
import pytest
from scipy.special import ndtr

from solvers import numba_runtime as rt
from tests.mills_table import DEGREE, PIECES, WIDTH, mills, mills_table


@numba.njit(cache=False)
def _ndtr_array(x, out):
    for i in range(x.size):
        out[i] = rt._ndtr(x[i])


def compiled_ndtr(x):
    out = np.empty_like(x)
    _ndtr_array(x, out)
    return out


def test_the_stored_table_is_the_fitted_one():
    """The table in numba_runtime is the least-squares fit made anew (to the last bits but one)."""
    fresh = np.array(mills_table())
    assert rt._MILLS.shape == (PIECES, DEGREE + 1) == fresh.shape
    np.testing.assert_allclose(rt._MILLS, fresh, rtol=4e-16, atol=0)


def test_the_table_fits_the_mills_ratio_to_rounding():
    """Each piece's polynomial is M(t) to < 3e-16 relative (40-digit reference) on its interval."""
    worst = 0.0
    for k in range(PIECES):
        c = (k + 0.5) * WIDTH
        for s in np.linspace(-WIDTH / 2, WIDTH / 2, 41):
            v = np.polynomial.polynomial.polyval(s, rt._MILLS[k])
            ref = mills(c + s)
            worst = max(worst, float(abs((mp.mpf(v) - ref) / ref)))
    assert worst < 3e-16


@pytest.mark.parametrize("lo, hi", [(-37.0, -8.0), (-8.0, 0.0), (0.0, 8.0), (8.0, 38.0)])
def test_compiled_ndtr_is_as_accurate_as_scipy(lo, hi):
    """Phi(x) = erfc(-x / sqrt 2) / 2 in 40 digits: for x <= 0 relative error, for x > 0 absolute
    error; the compiled function is within 2x scipy's own error and a few ulp.  (For x < -8 both
    carry the error of exp(-x^2/2) from rounding x^2: about x^2/2 ulp.  Below -37 Phi is subnormal.)"""
    x = np.linspace(lo, hi, 2001)
    mine = compiled_ndtr(x)
    theirs = ndtr(x)
    with mp.workdps(40):
        ref = np.array([float(mp.erfc(-mp.mpf(v) / mp.sqrt(2)) / 2) for v in x])
        ref_hi = [mp.erfc(-mp.mpf(v) / mp.sqrt(2)) / 2 for v in x]
    if hi <= 0:
        err_m = np.array([float(abs((mp.mpf(a) - r) / r)) for a, r in zip(mine, ref_hi)])
        err_s = np.array([float(abs((mp.mpf(a) - r) / r)) for a, r in zip(theirs, ref_hi)])
        ulp_scale = np.maximum(1.0, x ** 2 / 2) * 2.2e-16
    else:
        err_m = np.abs(mine - ref)
        err_s = np.abs(theirs - ref)
        ulp_scale = np.full_like(x, 2.2e-16)
    assert np.all(err_m <= 4 * ulp_scale), (x[np.argmax(err_m / ulp_scale)], err_m.max())
    assert err_m.max() <= 2 * err_s.max() + 4.5e-16


def test_compiled_ndtr_matches_scipy_on_the_particles_range(rng):
    """Where the neurons are (normal samples around the balanced state): equal to scipy to 3e-16
    absolute, and 1e-14 relative (scipy's own relative error reaches 7e-15 on [-8, -5], where this
    one's is 1e-15)."""
    x = rng.normal(-0.75, 1.5, 200_000)
    mine, theirs = compiled_ndtr(x), ndtr(x)
    assert np.max(np.abs(mine - theirs)) <= 3.4e-16
    assert np.max(np.abs(mine - theirs) / theirs) <= 1e-14
    assert compiled_ndtr(np.array([-40.0]))[0] == 0.0 and compiled_ndtr(np.array([40.0]))[0] == 1.0
