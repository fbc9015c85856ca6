"""The kinetic solver's step audit at finite n (issue 9: every solver checks its step against the
fastest time scale).  The end-of-step multiplier treats the fast modes nu of the finite-n fast matrix
diag(<f'>) + sqrt(n) W D like implicit Euler: stable but damping when |dt nu| is not small.

* ``fast_rates`` at the finite-n stationary density equals the stationary solver's finite-n spectrum.
* Hopf model (tests/test_fast_dynamics.py) at n = 1e4, where the finite-n state is unstable
  (nu ~ 0.13 + 19.7i on the shifted initial density): dt = 0.01 is refused with the largest accurate
  dt; that dt runs; step_check='off' runs and records the unresolved growing mode.
* ``unresolved_transient`` bounds the linear error of a decaying mode under the step.
* ei_linear at n = 1e4 from x ~ N(0, 1): dt = 0.01, 0.02 do not resolve the initial ringing and say
  so; later errors fall with dt.
* verify refines its kinetic step until that transient ends before its averaging window.
"""
import numpy as np
import pytest
from scipy.stats import norm

from solvers.compiled import CompiledModel
from solvers.kinetic import STEP_TOL, KineticSolver, KineticStepTooCoarse, unresolved_transient
from solvers.stationary import solve_finite_n
from test_fast_dynamics import hopf_model


def test_fast_rates_equal_the_stationary_finite_n_spectrum():
    cm = CompiledModel("ei_linear")
    n = 1e4
    st = solve_finite_n(cm, n)
    ks = KineticSolver(cm, n=n)
    p = np.stack([norm.pdf(ks.x[ia], st.mean[ia, 0], np.sqrt(st.variance[ia, 0]))[None, :]
                  for ia in range(cm.P)])
    nu = np.sort_complex(ks.fast_rates(p, 0.0))
    ref = np.sort_complex(np.asarray(st.finite_n_eigenvalues))
    assert nu.shape == ref.shape == (2,)
    np.testing.assert_allclose(nu, ref, rtol=2e-3)


def test_unresolved_growing_mode_is_refused_with_the_accurate_dt():
    cm = hopf_model(-1.3)
    ks = KineticSolver(cm, n=1e4)
    with pytest.raises(KineticStepTooCoarse, match=r"grows .* largest accurate dt is") as exc:
        ks.run(0.2, 0.01, initial_layer=True, grid_convergence=False)
    e = exc.value
    assert e.t == 0 and e.nu.real > 0 and 15 < e.nu.imag < 25
    assert e.dt_accurate == pytest.approx(2 * STEP_TOL / abs(e.nu))
    res = ks.run(0.2, 0.9 * e.dt_accurate, initial_layer=True, grid_convergence=False)
    au = res.info["step_audit"]
    assert au["max_z"] <= 2 * STEP_TOL and not au["unresolved_growing"] and au["transient"] == 0
    off = KineticSolver(cm, n=1e4, step_check="off").run(0.2, 0.01, initial_layer=True, grid_convergence=False)
    assert off.info["step_audit"]["unresolved_growing"] and off.info["step_audit"]["max_z"] > 2 * STEP_TOL


@pytest.mark.parametrize("re", [-3.0, -1.0, -0.3, -0.1, -0.03, -0.01])
@pytest.mark.parametrize("im", [0.0, 0.05, 0.3, 1.0, 3.0])
def test_unresolved_transient_bounds_the_linear_error(re, im):
    """After the reported transient the implicit step's error of a decaying mode,
    |exp(k z) - (1 - z)^-k|, never exceeds STEP_TOL (checked for 200000 steps)."""
    z = complex(re, im)
    dt = 0.01
    tr = unresolved_transient(z, dt)
    assert np.isfinite(tr)
    k = np.arange(int(round(tr / dt)) + 1, 200_000)
    with np.errstate(under="ignore"):
        err = np.abs(np.exp(k * z) - np.exp(-k * np.log(1 - z)))
    assert err.max() <= STEP_TOL
    if tr > 0:                                 # and the bound is not vacuous: the error was there
        k0 = np.arange(1, int(round(tr / dt)) + 1)
        assert np.abs(np.exp(k0 * z) - np.exp(-k0 * np.log(1 - z))).max() > STEP_TOL / 20


def test_unresolved_decaying_modes_are_reported_and_converge():
    """ei_linear at n = 1e4 from x ~ N(0, 1) (initial shift ~1.2): dt = 0.02 and 0.01 leave the initial
    ringing (nu ~ -5.7 + 7i) unresolved and report a transient; dt = 0.005 leaves none (transient 0).  Against dt = 5e-4 the error after t = 1 falls with dt (measured 0.0067, 0.0043,
    0.0013) and stays below 1 % of the shift."""
    cm = CompiledModel("ei_linear")
    runs = {dt: KineticSolver(cm, n=1e4).run(2.0, dt, initial_layer=False, grid_convergence=False,
                                             record_every=0.04)
            for dt in (0.02, 0.01, 0.005, 5e-4)}
    ref = runs[5e-4]
    late = {}
    for dt, r in runs.items():
        au = r.info["step_audit"]
        if dt >= 0.01:
            assert 0.1 < au["transient"] < 1.0 and au["nu_transient"][0] < 0 and au["max_z"] > 2 * STEP_TOL
        else:
            assert au["transient"] == 0          # |dt nu| up to 0.068, but its error bound stays below tol
        late[dt] = np.abs(r.mean - ref.mean)[ref.times >= 1.0].max()
    assert late[0.02] > late[0.01] > late[0.005] and late[0.01] < 0.012, late


def test_verify_refines_the_kinetic_step_until_the_transient_ends_before_its_window(capsys):
    from solvers.verify import VerifySettings, _kinetic_window
    cm = CompiledModel("ei_linear")
    s = VerifySettings(T=1.0, t0=0.1, kinetic_dt=0.02)
    w = _kinetic_window(cm, 1e4, s, initial_layer=False, progress=print)
    assert w["kinetic_dt"] < 0.02 and w["step_audit"]["transient"] <= s.t0
    assert "unresolved fast transient" in capsys.readouterr().out
    plain = KineticSolver(cm, n=1e4).run(1.0, 0.02, initial_layer=False, grid_convergence=False)
    assert plain.info["step_audit"]["transient"] > s.t0          # the default step would not have done
