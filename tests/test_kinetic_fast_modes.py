"""The kinetic solver's step audit at finite n (issue 9: every solver checks its step against the
fastest time scale).  The end-of-step multiplier treats the fast modes nu of the finite-n fast matrix
diag(<f'>) + sqrt(n) W D like implicit Euler: stable but damping when |dt nu| is not small.

* ``fast_rates`` at the finite-n stationary density equals the stationary solver's finite-n spectrum.
* Hopf model (tests/test_fast_dynamics.py) at n = 1e4, where the finite-n state is unstable
  (nu ~ 0.13 + 19.7i on the shifted initial density): dt = 0.01 is refused with the largest accurate
  dt; that dt runs; step_check='off' runs and records the unresolved growing mode.
* ei_linear at n = 1e4 from x ~ N(0, 1): dt = 0.01, 0.02 do not resolve the initial ringing; the
  reported transient bounds where the error sits: after it the difference to a resolved run
  (dt = 5e-4) is below a quarter of the largest difference inside it, and first order in dt
  (ratio 2 +- 0.5 between dt = 0.02 and 0.01; measured 1.93).
* verify refines its kinetic step until that transient ends before its averaging window.
"""
import numpy as np
import pytest
from scipy.stats import norm

from solvers.compiled import CompiledModel
from solvers.kinetic import STEP_TOL, KineticError, KineticSolver, KineticStepTooCoarse
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


def test_unresolved_decaying_modes_err_only_inside_the_reported_transient():
    cm = CompiledModel("ei_linear")
    runs = {dt: KineticSolver(cm, n=1e4).run(2.0, dt, initial_layer=False, grid_convergence=False,
                                             record_every=0.02)
            for dt in (0.02, 0.01, 5e-4)}
    ref = runs[5e-4]
    assert ref.info["step_audit"]["transient"] == 0 and ref.info["step_audit"]["max_z"] <= 2 * STEP_TOL
    after = {}
    for dt in (0.02, 0.01):
        au = runs[dt].info["step_audit"]
        tr = au["transient"]
        assert 0.2 < tr < 1.5 and au["nu_transient"][0] < 0
        diff = np.abs(runs[dt].mean - ref.mean).max(axis=(1, 2))
        inside, outside = diff[ref.times < tr], diff[ref.times >= tr]
        assert outside.max() < 0.25 * inside.max(), (dt, inside.max(), outside.max())
        after[dt] = outside.max()
    assert 1.5 < after[0.02] / after[0.01] < 2.5, after


def test_verify_refines_the_kinetic_step_until_the_transient_ends_before_its_window(capsys):
    from solvers.verify import VerifySettings, _kinetic_window
    cm = CompiledModel("ei_linear")
    s = VerifySettings(T=1.0, t0=0.1, kinetic_dt=0.02)
    w = _kinetic_window(cm, 1e4, s, initial_layer=False, progress=True)
    assert w["kinetic_dt"] < 0.02 and w["step_audit"]["transient"] <= s.t0
    assert "unresolved fast transient" in capsys.readouterr().out
    plain = KineticSolver(cm, n=1e4).run(1.0, 0.02, initial_layer=False, grid_convergence=False)
    assert plain.info["step_audit"]["transient"] > s.t0          # the default step would not have done
