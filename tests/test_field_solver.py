"""The neural-field solver (solvers/field.py): against the kinetic solver, the stationary solver,
exact solutions with time-dependent input, an independent ODE integration of the index-reduced
field (m = 2), second-order convergence, the Gaussian closure and its labelling, output and CLI."""
import argparse
import functools
import json
import math

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import solve_ivp
from scipy.special import ndtri

from derive import Model, Phi, Point, Population, Ring, t
from derive.codegen import compile_module
from solvers.balance_errors import DriveOutsideRange
from solvers.compiled import CompiledModel
from balkin.cli.solve_field import add_field_arguments, solve_field_command
from solvers.field import FieldNotApplicable, FieldSolver, solve_field, stationary_field

x, y = sp.symbols("x y")
th, ph = sp.symbols("theta phi")


def ring_kernel(J=(1, 2, 1, 1.8), eps=(0.6, 0.9)):
    k = lambda Jab, e: Jab * (1 + e * sp.cos(th - ph))  # noqa: E731
    return {("E", "E"): k(J[0], eps[0]), ("E", "I"): k(-J[1], eps[1]),
            ("I", "E"): k(J[2], eps[0]), ("I", "I"): k(-J[3], eps[1])}


def ring_model(name, drift, inputs=(0, 0), diffusion=1):
    """ring_ei with another drift / inputs (SymPy expressions in x, theta, t)."""
    pops = [Population(a, drift=drift, diffusion=diffusion, gain=Phi(x),
                       drive=H * (1 + sp.Rational(1, 5) * sp.cos(th)), input=u)
            for a, H, u in (("E", sp.Rational(1, 10), inputs[0]), ("I", sp.Rational(3, 50), inputs[1]))]
    return CompiledModel(compile_module(Model(name=name, state=[x], space=Ring(th, ph), populations=pops,
                                              kernel=ring_kernel())))


@functools.lru_cache(maxsize=None)
def ring_adapt():
    """m = 2: x receives the input and drives the gain, y is an adaptation variable with a spatially
    varying feedback; correlated additive noise; a time-dependent input outside Range(W)."""
    pops = []
    for a, H in (("E", sp.Rational(1, 10)), ("I", sp.Rational(3, 50))):
        pops.append(Population(a, drift=[-x - (sp.Rational(1, 2) + sp.Rational(1, 5) * sp.cos(th)) * y,
                                         -y + x / 2],
                               diffusion=[[1, 0], [sp.Rational(1, 5), sp.Rational(3, 10)]], gain=Phi(x),
                               drive=H * (1 + sp.Rational(1, 5) * sp.cos(th)),
                               input=sp.sin(2 * t) * sp.cos(2 * th) / 10))
    return CompiledModel(compile_module(Model(name="ring_adapt", state=[x, y], space=Ring(th, ph),
                                              populations=pops, kernel=ring_kernel())))


# ---- against the kinetic solver and the stationary solver ----------------------------------------

def test_field_equals_kinetic_solver_on_ring_ei():
    """From N(0, 1) (off the manifold): the initial-layer shifts agree, and the kinetic solver's mean
    and variance equal the field's to 1e-5 at t = 0.25, 0.5, 0.75, 1 (SG flux, nx = 3000 on [-8.5, 6.5],
    so that the shifted initial Gaussians lie well inside the grid; TR-BDF2 with dt = 1/256; the
    largest differences, 3e-6 in the mean and 7e-6 in the variance near t = 0.5, are the kinetic
    solver's O(h^2 + dt^2) errors)."""
    from solvers.kinetic import KineticSolver
    npos = 4
    kr = KineticSolver("ring_ei", npos=npos, nx=3000, interval=(-8.5, 6.5)).run(1.0, 1 / 256, record_every=0.25)
    fr = FieldSolver("ring_ei", npos=npos).run(1.0, 0.05, record_every=0.25)
    np.testing.assert_allclose(kr.times, fr.times)
    np.testing.assert_allclose(fr.shift, kr.shift, atol=1e-9)
    np.testing.assert_allclose(fr.mean[0], kr.mean[0], atol=1e-9)
    np.testing.assert_allclose(fr.variance[0], kr.variance[0], atol=1e-8)
    for k in range(1, len(fr.times)):
        np.testing.assert_allclose(fr.mean[k], kr.mean[k], atol=1e-5, err_msg=f"mean at t = {fr.times[k]}")
        np.testing.assert_allclose(fr.variance[k], kr.variance[k], atol=1e-5, err_msg=f"variance at t = {fr.times[k]}")
        np.testing.assert_allclose(fr.gbar[k], kr.gbar[k], atol=1e-6)
        # the kinetic multiplier is the step average (first order in dt); the field's is instantaneous
        np.testing.assert_allclose(fr.lam[k], kr.lam[k], atol=2e-3)
    assert fr.residual.max() <= 1e-10


@pytest.mark.parametrize("name,npos", [("ring_ei", 32), ("ei_linear", 1), ("ring_unstable", 16)])
def test_stationary_field_equals_stationary_solver(name, npos):
    from solvers.stationary import solve_balanced
    sb = solve_balanced(name, npos=npos, check_stability=False)
    st = stationary_field(name, npos=npos)
    for key in ("lam", "gbar", "mean", "variance", "slope"):
        np.testing.assert_allclose(getattr(st, key), getattr(sb, key), atol=1e-8, err_msg=key)
    assert st.residual <= 1e-12
    assert st.kind == "stationary-field" and not st.approximation


def test_ring_ei_stationary_values_from_the_model_docstring():
    st = stationary_field("ring_ei", npos=64)
    np.testing.assert_allclose(st.lam[:, [0, 16, 32]], [[0.0437, -0.7028, -1.4494], [-0.6603, -1.0580, -1.4556]],
                               atol=1e-4)
    np.testing.assert_allclose(st.variance, 0.5, atol=1e-14)


def test_run_relaxes_to_the_stationary_field():
    fs = FieldSolver("ring_ei", npos=32)
    res = fs.run(40.0, 0.1, record_every=10.0)
    st = fs.stationary()
    np.testing.assert_allclose(res.mean[-1], st.mean, atol=1e-10)
    np.testing.assert_allclose(res.lam[-1], st.lam, atol=1e-10)
    np.testing.assert_allclose(res.variance[-1], st.variance, atol=1e-12)
    assert res.residual.max() <= 1e-10
    assert res.info["manifold_attracting"]


# ---- exact solutions, convergence, an independent integration --------------------------------------

def test_point_model_with_time_dependent_input_is_exact():
    """No space, W invertible: balance fixes gbar = (0.3, 0.2), so m_a(t) = sqrt(1 + C(t)) Phi^-1(g_a) with
    C(t) = 1/2 + (C0 - 1/2) e^(-2t) whatever the input; lambda = m' + m - u takes up the input."""
    pops = [Population("E", drift=-x, diffusion=1, gain=Phi(x), drive=sp.Rational(1, 10), input=sp.sin(2 * t) * 3 / 10),
            Population("I", drift=-x, diffusion=1, gain=Phi(x), drive=sp.Rational(3, 50), input=sp.cos(3 * t) / 5)]
    cm = CompiledModel(compile_module(Model(name="point_stim", state=[x], space=Point(), populations=pops,
                                            kernel={("E", "E"): 1, ("E", "I"): -2, ("I", "E"): 1, ("I", "I"): -1.8})))
    res = FieldSolver(cm, init=(0.4, 1.5)).run(3.0, 0.1)
    tt = res.times
    C = 0.5 + (2.25 - 0.5) * np.exp(-2 * tt)
    dC = -2 * (2.25 - 0.5) * np.exp(-2 * tt)
    z = ndtri(np.array([0.3, 0.2]))
    m = np.sqrt(1 + C)[:, None] * z
    dm = (dC / (2 * np.sqrt(1 + C)))[:, None] * z
    u = np.stack([0.3 * np.sin(2 * tt), 0.2 * np.cos(3 * tt)], axis=1)
    np.testing.assert_allclose(res.variance[:, :, 0], np.stack([C, C], 1), atol=1e-13)
    np.testing.assert_allclose(res.mean[:, :, 0], m, atol=1e-12)
    np.testing.assert_allclose(res.lam[:, :, 0], dm + m - u, atol=1e-8)
    np.testing.assert_allclose(res.gbar[:, :, 0], np.broadcast_to([0.3, 0.2], m.shape), atol=1e-13)
    np.testing.assert_allclose(res.shift[:, 0], math.sqrt(1 + 2.25) * z - 0.4, atol=1e-12)


def test_second_order_in_dt_with_spatially_varying_drift_and_input():
    """f = -(1 + cos(theta)/2) x (lambda directions leave Range(W) during a step) and a time-dependent
    input: errors against dt = T/320 fall by 4 per halving; the constraint holds at every step."""
    cm = ring_model("ring_vary", -(1 + sp.cos(th) / 2) * x,
                    inputs=(sp.sin(3 * t) * sp.cos(2 * th) / 5 + sp.sin(2 * t) / 10, sp.cos(t) / 10))
    fs = FieldSolver(cm, npos=16)
    ref = fs.run(1.0, 1 / 320)
    errs = []
    for dt in (0.1, 0.05, 0.025):
        r = fs.run(1.0, dt)
        assert r.residual.max() <= 1e-10
        errs.append(max(np.abs(r.mean[-1] - ref.mean[-1]).max(), np.abs(r.lam[-1] - ref.lam[-1]).max()))
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((rates > 1.8) & (rates < 2.3)), (errs, rates)
    assert errs[-1] < 1e-4


def _reduced_rhs(fs, cm, t_, z):
    """The index-reduced field ODE from the generated field_mean_rhs_P / field_cov_rhs_P, with the
    instantaneous multiplier."""
    P, N = fs.P, fs.N
    mean = z[:P * N * 2].reshape(P, N, 2)
    cu = z[P * N * 2:].reshape(P, N, 3)
    C = np.stack([np.stack([cu[..., 0], cu[..., 1]], -1), np.stack([cu[..., 1], cu[..., 2]], -1)], -2)
    lam = fs.multiplier(mean, C, t_)
    dm, dc = np.empty_like(mean), np.empty_like(cu)
    for ia, a in enumerate(cm.populations):
        r = cm.call("field_mean_rhs", a, mean[ia, :, 0], mean[ia, :, 1], *fs.pos, t_, lam[ia])
        dm[ia] = np.stack([np.broadcast_to(v, (N,)) for v in r], -1)
        r = cm.call("field_cov_rhs", a, cu[ia, :, 0], cu[ia, :, 1], cu[ia, :, 2], *fs.pos, t_)
        dc[ia] = np.stack([np.broadcast_to(v, (N,)) for v in r], -1)
    return np.concatenate([dm.ravel(), dc.ravel()])


def test_two_component_field_against_an_independent_ode_integration():
    """m = 2 (block exponentials, Van Loan covariance): the field equals DOP853 (rtol 1e-12) on the
    index-reduced ODE built from the generated right-hand sides, to second order in dt."""
    cm = ring_adapt()
    fs = FieldSolver(cm, npos=8)
    errs = []
    for dt in (0.02, 0.01):
        r = fs.run(1.0, dt)
        assert r.residual.max() <= 1e-10
        if dt == 0.02:
            m0, C0 = r.state_mean[0], r.state_cov[0]
            z0 = np.concatenate([m0.ravel(), np.stack([C0[..., 0, 0], C0[..., 0, 1], C0[..., 1, 1]], -1).ravel()])
            with np.errstate(under="ignore"):
                sol = solve_ivp(lambda s, z: _reduced_rhs(fs, cm, s, z), (0.0, 1.0), z0, method="DOP853",
                                rtol=1e-12, atol=1e-13)
            zT = sol.y[:, -1]
            mT = zT[:fs.P * fs.N * 2].reshape(fs.P, fs.N, 2)
            cu = zT[fs.P * fs.N * 2:].reshape(fs.P, fs.N, 3)
        errs.append(np.abs(r.state_mean[-1] - mT).max())
        np.testing.assert_allclose(r.state_cov[-1, ..., 0, 0], cu[..., 0], atol=1e-11)
        np.testing.assert_allclose(r.state_cov[-1, ..., 0, 1], cu[..., 1], atol=1e-11)
        np.testing.assert_allclose(r.state_cov[-1, ..., 1, 1], cu[..., 2], atol=1e-11)
    assert errs[1] < 2e-6 and 3.5 < errs[0] / errs[1] < 4.5, errs


def test_two_component_stationary_field_solves_lyapunov_and_balance():
    cm = ring_adapt()
    fs = FieldSolver(cm, npos=8)
    st = fs.stationary(0.0)
    A, b, Q = fs.linear_coefficients(0.0)
    C = st.state_cov
    np.testing.assert_allclose(A @ C + C @ np.swapaxes(A, -1, -2) + Q, 0.0, atol=1e-13)
    rhs = np.einsum("pnij,pnj->pni", A, st.state_mean) + b
    rhs[..., 0] += st.lam
    np.testing.assert_allclose(rhs, 0.0, atol=1e-13)
    np.testing.assert_allclose(fs.imbalance(st.state_mean, C, 0.0), 0.0, atol=1e-12)


# ---- refusal, closure ----------------------------------------------------------------------------

def test_nonlinear_model_is_refused_with_a_clear_message():
    with pytest.raises(FieldNotApplicable) as err:
        FieldSolver("ring_nonlinear")
    msg = str(err.value)
    assert "ring_nonlinear" in msg and "population E" in msg and "closure" in msg


def test_gaussian_closure_is_labelled_an_approximation(tmp_path):
    fs = FieldSolver("ring_nonlinear", npos=16, closure=True)
    res = fs.run(12.0, 0.05, record_every=1.0)
    st = fs.stationary()
    assert res.kind == "field-gaussian-closure" and res.approximation
    assert st.kind == "stationary-field-gaussian-closure" and st.approximation
    rec, srec = res.to_record(), st.to_record()
    for r in (rec, srec):
        assert r["approximation"] is True and "APPROXIMATION" in r["note"]
    assert rec["kind"] == "field-gaussian-closure"
    assert res.residual.max() <= 1e-10
    np.testing.assert_allclose(res.lam[-1], st.lam, atol=1e-6)
    # the closure's stationary mean solves f(m) + lambda = 0 with f = -m - c m^3
    c = fs.model.params["c"]
    np.testing.assert_allclose(-st.mean - c * st.mean ** 3 + st.lam, 0.0, atol=1e-12)
    res.save_npz(tmp_path / "closure.npz")
    with np.load(tmp_path / "closure.npz") as z:
        assert bool(z["approximation"]) and str(z["kind"]) == "field-gaussian-closure"


def test_closure_of_a_linear_model_reproduces_the_exact_field():
    exact = FieldSolver("ring_ei", npos=16).run(3.0, 0.05)
    clos = FieldSolver("ring_ei", npos=16, closure=True).run(3.0, 0.05)
    np.testing.assert_allclose(clos.mean, exact.mean, atol=1e-9)
    np.testing.assert_allclose(clos.variance, exact.variance, atol=1e-9)
    np.testing.assert_allclose(clos.lam, exact.lam, atol=1e-8)


def test_drive_outside_range_is_refused():
    """Untuned kernels (eps = 0): Range(W) holds only constants, the drive's cos theta part is outside."""
    with pytest.raises(DriveOutsideRange):
        FieldSolver("ring_ei", npos=16, params={"eps_E": 0.0, "eps_I": 0.0}).run(1.0, 0.1)
    with pytest.raises(DriveOutsideRange):
        stationary_field("ring_ei", npos=16, params={"eps_E": 0.0, "eps_I": 0.0})


# ---- output and command line -------------------------------------------------------------------

def test_record_has_the_kinetic_schema(tmp_path):
    from solvers.output import write_json
    res = solve_field("ring_ei", 1.0, 0.1, npos=8)
    rec = res.to_record()
    assert rec["kind"] == "field" and rec["approximation"] is False and rec["model"] == "ring_ei"
    assert len(rec["theta"]) == 8
    for a in ("E", "I"):
        assert set(rec[a]) == {"lambda", "gbar", "mean", "variance"}
        assert len(rec[a]["mean"]) == 8
        assert np.shape(rec["time_series"][a]["mean"]) == (11, 8)
        assert len(rec["initial_shift"][a]) == 8
    assert len(rec["time_series"]["t"]) == 11
    assert rec["invariants"]["max_constraint_residual"] <= 1e-10
    write_json(tmp_path / "f.json", rec)
    assert json.loads((tmp_path / "f.json").read_text())["E"]["gbar"] == rec["E"]["gbar"]
    res.save_npz(tmp_path / "f.npz")
    with np.load(tmp_path / "f.npz") as z:
        np.testing.assert_allclose(z["mean"], res.mean)
        assert z["state_cov"].shape == (11, 2, 8, 1, 1)


def _parser():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--T", type=float)            # as if another mode (--kinetic) had added it first
    add_field_arguments(p)
    return p


def test_solve_field_command(tmp_path, capsys):
    p = _parser()
    args = p.parse_args(["ring_ei", "--T", "2", "--dt", "0.1", "--npos", "8", "--json", str(tmp_path / "f.json"),
                         "--npz", str(tmp_path / "f.npz"), "--param", "delta=0.1"])
    assert solve_field_command(args) == 0
    out = capsys.readouterr().out
    assert "field: model ring_ei" in out and "max |W G + h|" in out
    rec = json.loads((tmp_path / "f.json").read_text())
    assert rec["kind"] == "field" and rec["parameters"]["delta"] == 0.1
    assert (tmp_path / "f.npz").exists()
    args = p.parse_args(["ring_ei", "--T", "1"])
    args.n = 100.0
    assert solve_field_command(args) == 2
    with pytest.raises(FieldNotApplicable):
        solve_field_command(p.parse_args(["ring_nonlinear", "--T", "1"]))
    assert solve_field_command(p.parse_args(["ring_nonlinear", "--T", "1", "--closure", "--npos", "8"])) == 0
    assert "APPROXIMATION" in capsys.readouterr().out
