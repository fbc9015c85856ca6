"""Phase diagrams (solvers.sweep, solvers.boundaries, solvers.arclength): boundaries against closed
forms and an independent eigenvalue computation; the table; pseudo-arclength round a fold."""
import csv
import io
import json
import math

import numpy as np
import pytest
from scipy.optimize import fsolve
from scipy.stats import norm

from solvers.compiled import CompiledModel
from solvers.sweep import parse_range, sweep


def test_parse_range_and_bad_input():
    name, v = parse_range("eps_E=0.4:1.0:7")
    assert name == "eps_E" and np.allclose(v, np.linspace(0.4, 1.0, 7))
    for bad in ("eps_E=0.4:1.0", "eps_E", "eps_E=a:1:3", "eps_E=0:1:0", "eps_E=1:1:3", "eps_E=0:inf:3"):
        with pytest.raises(ValueError, match="--param"):
            parse_range(bad)
    with pytest.raises(ValueError, match="unknown parameter 'nope'"):
        sweep("ei_linear", ["nope=0:1:3"])


def test_ei_linear_loss_of_balance_located_against_closed_form():
    """gbar = -W^{-1} h on the point model: linear in h_E; the balance is lost where a component
    reaches 0 or 1 (the range of Phi); both ends located to 1e-8, every grid point classified right."""
    cm = CompiledModel("ei_linear")
    p = cm.params
    W = np.array([[p["w_EE"], p["w_EI"]], [p["w_IE"], p["w_II"]]])
    Winv = np.linalg.inv(W)
    # gbar(h_E) = -Winv (h_E, h_I) = a + b h_E
    a = -Winv @ np.array([0.0, p["h_I"]])
    b = -Winv @ np.array([1.0, 0.0])
    ends = sorted((e - a[i]) / b[i] for i in range(2) for e in (0.0, 1.0))
    inside = lambda h: np.all((a + b * h > 0) & (a + b * h < 1))  # noqa: E731
    lo = max(h for h in ends if not inside(h - 1e-9) and inside(h + 1e-9))
    hi = min(h for h in ends if inside(h - 1e-9) and not inside(h + 1e-9))
    res = sweep("ei_linear", ["h_E=0:0.25:11"])
    for pt in res.points:
        assert (pt["status"] == "ok") == bool(inside(pt["params"]["h_E"])), pt["params"]
    found = sorted(bd["value"] for bd in res.boundaries if bd["kind"] == "loss-of-balance")
    assert len(found) == 2
    assert abs(found[0] - lo) < 1e-8 and abs(found[1] - hi) < 1e-8, (found, lo, hi)
    for bd in res.boundaries:
        assert bd["range_end"] in (0.0, 1.0) and abs(bd["demanded_activity"] - bd["range_end"]) < 1e-8


def _ring_unstable_hopf():
    """ring_unstable is homogeneous (delta = 0): gbar = g0 = -M0^{-1} H for every eps, the slopes
    D_a = phi(Phi^{-1}(g0_a) ) / sqrt(1 + s^2/2), and the cos block M0 diag(eps D) / 2 has trace
    (J_EE eps_E D_E - J_II eps_I D_I) / 2: zero at eps_E* = J_II eps_I D_I / (J_EE D_E), with
    det = eps_E eps_I D_E D_I (J_EI J_IE - J_EE J_II) / 4 > 0 there (a Hopf point, frequency sqrt(det))."""
    p = CompiledModel("ring_unstable").params
    M0 = np.array([[p["J_EE"], -p["J_EI"]], [p["J_IE"], -p["J_II"]]])
    g0 = np.linalg.solve(M0, -np.array([p["H_E"], p["H_I"]]))
    c = math.sqrt(1 + p["s"] ** 2 / 2)
    D = norm.pdf(norm.ppf(g0)) / c
    eps_star = p["J_II"] * p["eps_I"] * D[1] / (p["J_EE"] * D[0])
    det = eps_star * p["eps_I"] * D[0] * D[1] * (p["J_EI"] * p["J_IE"] - p["J_EE"] * p["J_II"]) / 4
    return eps_star, math.sqrt(det), p


def test_ring_unstable_hopf_boundary_closed_form_and_unstable_side():
    eps_star, freq, p = _ring_unstable_hopf()
    res = sweep("ring_unstable", ["eps_E=0.3:1.0:8"], npos=16)
    cos = [bd for bd in res.boundaries if "cos(theta)" in bd.get("modes_at_root", ())]
    assert len(cos) == 1 and cos[0]["kind"] == "hopf"
    assert abs(cos[0]["value"] - eps_star) < 1e-8
    assert abs(cos[0]["angular_frequency_per_sqrt_n"] - freq) < 1e-8
    # ring_unstable's own parameters (eps_E = 1) lie on the unstable side, as its spectrum says
    assert p["eps_E"] > eps_star
    last = res.point(7)
    assert last["params"]["eps_E"] == p["eps_E"] and last["verdict"] == "unstable-oscillatory"
    from solvers.spectrum import spectrum
    assert spectrum("ring_unstable", npos=16).verdict == "unstable"
    for pt in res.points:
        assert (pt["verdict"] == "unstable-oscillatory") == (pt["params"]["eps_E"] > eps_star)


# ---- ring_ei: the cos-mode boundary against a direct computation in Fourier coefficients ---------

def _direct_cos_mode(params, nth=512):
    """Independent of the solvers: the balanced state of the linear ring model in Fourier
    coefficients (lambda_a = l0_a + l1_a cos theta; gbar = Phi(lambda / sqrt(1 + s^2/2)) must have
    the constant and cos coefficients that balance demands) on a fine theta grid, then W D on
    span{1, cos, sin} per population; the (1, cos) block (D is even) gives the eigenvalues, of
    which the two with most weight on the cos coefficients are the cos mode's.  Returns them."""
    p = params
    th = 2 * np.pi * np.arange(nth) / nth
    c = math.sqrt(1 + p["s"] ** 2 / 2)
    sgn = np.array([[1.0, -1.0], [1.0, -1.0]])
    J = np.array([[p["J_EE"], p["J_EI"]], [p["J_IE"], p["J_II"]]]) * sgn
    eps = np.array([p["eps_E"], p["eps_I"]])
    H = np.array([p["H_E"], p["H_I"]])
    g0 = np.linalg.solve(J, -H)
    g1 = np.linalg.solve(J * eps[None, :] / 2, -p["delta"] * H)      # cos coefficient: <cos gbar> = g1 / 2

    def eqs(v):
        lam = v[:2, None] + v[2:, None] * np.cos(th)[None, :]
        g = norm.cdf(lam / c)
        return np.concatenate([g.mean(axis=1) - g0, (g * np.cos(th)).mean(axis=1) - g1 / 2])
    v = fsolve(eqs, np.zeros(4), xtol=1e-12)
    lam = v[:2, None] + v[2:, None] * np.cos(th)[None, :]
    D = norm.pdf(lam / c) / c                                           # (2, nth)
    basis = [np.ones(nth), np.cos(th)]
    M = np.zeros((4, 4))            # coordinates (a, k): q_a = sum_k x_(a,k) basis_k
    for ia in range(2):
        for ib in range(2):
            for kb in range(2):
                Dq = D[ib] * basis[kb]
                M[2 * ia + 0, 2 * ib + kb] = J[ia, ib] * Dq.mean()
                M[2 * ia + 1, 2 * ib + kb] = J[ia, ib] * eps[ib] * (np.cos(th) * Dq).mean()
    w, X = np.linalg.eig(M)
    cos_weight = np.abs(X[1]) ** 2 + np.abs(X[3]) ** 2
    return w[np.argsort(-cos_weight)[:2]]


def test_ring_ei_cos_mode_boundary_against_direct_eigenvalues():
    res = sweep("ring_ei", ["eps_E=0.45:0.95:3", "eps_I=0.45:0.95:3"], slow=False)
    cos = [bd for bd in res.boundaries if "cos(theta)" in bd.get("modes_at_root", ()) and bd["type"] == "fast"]
    assert len(cos) >= 2
    base = CompiledModel("ring_ei").params
    for bd in cos:
        assert bd["kind"] == "hopf"
        name, v = bd["parameter"], bd["value"]
        lo, hi = sorted(bd["bracket"])
        assert lo < v < hi
        # on a fine grid around the located value the direct computation changes sign within 1e-7
        f = [max(_direct_cos_mode({**base, **bd["params"], name: v + d}).real) for d in (-1e-7, 1e-7)]
        assert f[0] * f[1] < 0, (bd, f)
        mu = _direct_cos_mode({**base, **bd["params"]})
        lead = mu[np.argmax(mu.real)]
        assert abs(abs(lead.imag) - bd["angular_frequency_per_sqrt_n"]) < 1e-7 * abs(lead.imag)


def test_table_json_and_csv_agree_with_points():
    res = sweep("ring_unstable", ["eps_E=0.5:0.6:2", "eps_I=0.25:0.3:2"], npos=16)
    assert res.shape == (2, 2) and len(res.points) == 4
    assert sorted(tuple(p["index"]) for p in res.points) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    rows = list(csv.DictReader(io.StringIO(res.to_csv())))
    assert len(rows) == 4 * 2                                   # one row per point and population
    rec = json.loads(res.to_json())
    assert rec["kind"] == "sweep" and len(rec["points"]) == 4
    for row in rows:
        pt = res.point(*_find(res, row))
        q = pt["populations"][row["population"]]
        assert float(row["gbar"]) == q["gbar"] and row["verdict"] == pt["verdict"]
        lead = max(np.concatenate(list(pt["fast"].values())).real)
        assert float(row["fast_leading_re"]) == lead
    # the boundary crosses between eps_E = 0.5 and 0.6 in both rows
    assert sum("cos(theta)" in bd.get("modes_at_root", ()) for bd in res.boundaries) == 2


def _find(res, row):
    for p in res.points:
        if all(float(row[nm]) == p["params"][nm] for nm, _ in res.axes):
            return tuple(p["index"])
    raise KeyError(row)


def test_finite_n_sweep_uses_the_finite_n_matrix_and_critical_size():
    """At finite n the deciding matrix is diag(<f'>) + sqrt(n) W D (f = -x: <f'> = -1): ring_unstable's
    Hopf boundary moves to larger eps_E, where sqrt(n) Re mu = 1; critical_size finds the n at which
    the cos mode crosses at fixed parameters, consistent with the eigenvalues there."""
    eps_star, _, _ = _ring_unstable_hopf()
    n = 2500.0
    res = sweep("ring_unstable", ["eps_E=0.5:1.0:6"], npos=16, n=n)
    cos = [bd for bd in res.boundaries if "cos(theta)" in bd.get("modes_at_root", ())]
    assert len(cos) == 1 and cos[0]["kind"] == "hopf" and cos[0]["value"] > eps_star
    assert abs(cos[0]["eigenvalue"][0]) < 1e-8
    # the limit sweep's critical sizes agree: unstable at n exactly where n* < n
    lim = sweep("ring_unstable", ["eps_E=0.5:1.0:6"], npos=16, critical_n=True, slow=False)
    for p_lim, p_n in zip(lim.points, res.points):
        if p_lim["critical_n"] is not None:
            assert (p_lim["critical_n"] < n) == p_n["verdict"].startswith("unstable"), (p_lim, p_n["verdict"])
    assert sum(p["critical_n"] is not None for p in lim.points) >= 3
    from solvers.boundaries import critical_size
    from solvers.ensemble import ModelRef
    from solvers.sweep_point import SweepSpec, fast_of, max_re, solve_state
    spec = SweepSpec(ModelRef.of("ring_unstable"), None, 16)
    out = critical_size(spec, {"eps_E": 0.9}, ("cos(theta)", "sin(theta)"), n_lo=1.0, n_hi=1e8)
    nc = out["n"]
    assert out["unstable_above"] and abs(out["eigenvalue"][0]) < 1e-8
    for m, sign in ((0.99, -1), (1.01, 1)):
        s2 = SweepSpec(spec.model, nc * m, 16)
        _, st = solve_state(s2, {"eps_E": 0.9})
        w = fast_of(s2, st)
        assert sign * max_re(np.concatenate([w.get(m, []) for m in ("cos(theta)", "sin(theta)")])) > 0


def test_pseudo_arclength_goes_round_a_fold():
    """F(x, y; p) = (x^2 + p - 1, y - x^3): the branch p = 1 - x^2 folds at p = 1 (x = 0);
    natural continuation in p cannot pass it, pseudo-arclength does and locates it to 1e-10."""
    from solvers.arclength import trace

    def F(y):
        x, z, p = y
        return np.array([x * x + p - 1, z - x ** 3])

    def J(y):
        x, z, p = y
        return np.array([[2 * x, 0.0, 1.0], [-3 * x * x, 1.0, 0.0]])
    y0 = np.array([-1.0, -1.0, 0.0])
    y1 = np.array([-0.9, -0.729, 1 - 0.81])
    out = trace(F, J, y0, y1, p_stop=2.0)
    assert out["fold"] is not None and not out["reached"]
    assert abs(out["fold"]["p"] - 1.0) < 1e-10 and abs(out["fold"]["y"][0]) < 1e-5
    assert out["points"][-1][0] > 0                      # the branch went round: x changed sign
    for y in out["points"]:
        assert np.max(np.abs(F(y))) < 1e-10


def test_sweep_command_and_api(tmp_path, capsys):
    """`balkin sweep` writes the JSON and CSV of the same table the API returns; bad input is one
    error line before any computation."""
    import balkin
    from cli_helpers import one_error_line, run
    js, cs = tmp_path / "s.json", tmp_path / "s.csv"
    code, out, err = run(["sweep", "ei_linear", "--param", "h_E=0:0.25:6", "--param", "h_I=0.06",
                          "--scheduler", "serial", "--json", js, "--csv", cs], capsys)
    assert code == 0, err
    assert "loss-of-balance" in out and "h_E = 0.06666666667" in out
    rec = json.loads(js.read_text())
    api = balkin.sweep("ei_linear", "h_E=0:0.25:6", params={"h_I": 0.06}, scheduler="serial")
    assert rec["points"] == api.to_dict()["points"] and rec["boundaries"] == api.to_dict()["boundaries"]
    assert cs.read_text() == api.to_csv()
    for argv, what in ((["--param", "h_E=0.1"], "one or two swept parameters"),
                       (["--param", "h_E=0:1:3", "--param", "h_E=0.1"], "both swept and fixed"),
                       (["--param", "h_E=0:1:3", "--check-particles", "2"], "needs --n"),
                       (["--param", "nope=0:1:3", "--scheduler", "serial"], "unknown parameter")):
        code, out, err = run(["sweep", "ei_linear", *argv], capsys)
        assert code == 2 and what in one_error_line(err, "sweep")


@pytest.mark.slow
def test_particles_on_both_sides_of_a_hopf_boundary_at_n_1e4():
    """ring_unstable swept in eps_E at n = 10^4: its finite-n Hopf boundary located, then particle
    ensembles (3 seeds, linear response along the leading mode) at the grid points on either side:
    steady (the kick decays) on the stable side, oscillating and growing on the other at the
    predicted sqrt(n) Im mu (here the finite-n eigenvalue's Im) within 5 %.  About 2 minutes of
    single-threaded work, on a LocalCluster."""
    res = sweep("ring_unstable", ["eps_E=0.5:1.0:6"], npos=16, n=1e4, check_particles=1, scheduler="local",
                particle_settings={"seeds": 3})
    hopf = [bd for bd in res.boundaries if bd["kind"] == "hopf"]
    assert len(hopf) == 1
    checks = res.particle_checks
    assert len(checks) == 2
    by_state = {c["predicted_state"]: c for c in checks}
    assert set(by_state) == {"steady", "oscillating"}
    steady, osc = by_state["steady"], by_state["oscillating"]
    assert steady["params"]["eps_E"] < hopf[0]["value"] < osc["params"]["eps_E"]
    assert steady["measured_state"] == "steady" and steady["measured_rate"] + 3 * steady["rate_se"] < 0
    assert osc["measured_state"] == "oscillating" and osc["measured_rate"] - 3 * osc["rate_se"] > 0
    assert abs(osc["measured_angular_frequency"] / osc["predicted_angular_frequency"] - 1) <= 0.05
    assert all(c["agrees"] for c in checks)


def test_arclength_on_a_model_branch_matches_the_stationary_solver():
    """solvers.arclength's branch equation of a real model (ei_linear at n = 100, swept in h_E):
    pseudo-arclength from two solved points to h_E = 0.13; every point it returns solves the
    finite-n equation, the last one is the state solve_finite_n finds there, and no fold is reported
    on this monotone branch."""
    from solvers.arclength import branch_equation, trace
    from solvers.ensemble import ModelRef
    from solvers.sweep_point import SweepSpec, solve_state
    spec = SweepSpec(ModelRef.of("ei_linear"), 100.0, None)
    ys = []
    for h in (0.1, 0.101):
        _, st = solve_state(spec, {"h_E": h})
        ys.append(np.append(np.ravel(st.Lambda), h))
    F, J = branch_equation(spec, {}, "h_E")
    out = trace(F, J, ys[0], ys[1], p_stop=0.13)
    assert out["reached"] and out["fold"] is None
    for y in out["points"]:
        assert np.max(np.abs(F(y))) < 1e-10
    last = out["points"][-1]
    _, st = solve_state(spec, {"h_E": float(last[-1])})
    assert np.max(np.abs(np.ravel(st.Lambda) - last[:-1])) < 1e-8


# ---- a fold: ei_bistable at n = 100, swept in h_E through both saddle-nodes of its S-shaped branch ----

def _ei_bistable_curve():
    """Independent of the solvers: the finite-n stationary means solve m / s = W Phi(m / c) + h
    (s = sqrt(n), c = sqrt(3/2)).  The I equation is monotone in m_I, so the branch is the graph
    m_E -> (m_I(m_E), h_E(m_E)); its folds are the extrema of h_E(m_E), where dh_E/dm_E = 0 (brentq
    on the analytic derivative).  Returns (h_E(m_E), the eigenvalues of -I + s W D at m, the two
    folds as (m_E, h_E) in increasing m_E)."""
    from scipy.optimize import brentq
    p = CompiledModel("ei_bistable").params
    s, c = 10.0, math.sqrt(1.5)
    W = np.array([[p["J_EE"], -p["J_EI"]], [p["J_IE"], -p["J_II"]]])

    def m_I(mE):
        return brentq(lambda mI: mI / s - (W[1, 0] * norm.cdf(mE / c) + W[1, 1] * norm.cdf(mI / c) + p["h_I"]),
                      -100, 100, xtol=1e-15, rtol=1e-15)

    def h_E(mE):
        return mE / s - W[0, 0] * norm.cdf(mE / c) - W[0, 1] * norm.cdf(m_I(mE) / c)

    def dh(mE):
        dE, dI = norm.pdf(mE / c) / c, norm.pdf(m_I(mE) / c) / c
        return 1 / s - W[0, 0] * dE - W[0, 1] * dI * (W[1, 0] * dE / (1 / s - W[1, 1] * dI))

    def eig(m):
        D = norm.pdf(np.asarray(m) / c) / c
        return np.linalg.eigvals(-np.eye(2) + s * W * D[None, :])
    folds = [(m, h_E(m)) for m in (brentq(dh, -3, -1, xtol=1e-15), brentq(dh, 1, 3, xtol=1e-15))]
    return h_E, m_I, eig, folds


def test_fold_located_and_the_branch_followed_round_it():
    """Natural continuation of the low branch cannot pass the upper fold (beyond it Newton jumps to
    the high branch); the sweep follows the branch by pseudo-arclength through both folds: the folds
    at the extrema of h_E(m_E) to 1e-8, a real deciding eigenvalue 0 there; on the way every grid
    value in the bistable interval gets its three states (branches 0, 1, 2 = low, middle, high),
    each on the independent curve, with the verdict its eigenvalues give: stable, unstable-real,
    stable."""
    h_E, m_I, eig, folds = _ei_bistable_curve()
    (mf_hi, hf_hi), (mf_lo, hf_lo) = folds               # the low branch ends at hf_hi, the high one at hf_lo
    res = sweep("ei_bistable", ["h_E=-1:0.4:15"], n=100, scheduler="serial")
    found = [b for b in res.boundaries if b["type"] == "fold"]
    assert [b["branches"] for b in found] == [[0, 1], [1, 2]]
    assert abs(found[0]["value"] - hf_hi) < 1e-8 and abs(found[1]["value"] - hf_lo) < 1e-8, (found, folds)
    for b in found:
        assert b["kind"] == "saddle-node" and abs(b["eigenvalue"][0]) < 1e-8 and b["eigenvalue"][1] == 0
    allp = res.points + res.branch_points
    assert all(p["status"] == "ok" for p in allp)
    for p in allp:
        h, mE, mI = p["params"]["h_E"], p["populations"]["E"]["mean"], p["populations"]["I"]["mean"]
        assert abs(h_E(mE) - h) < 1e-9 and abs(m_I(mE) - mI) < 1e-9          # on the branch
        expect = 0 if mE < mf_hi else (1 if mE < mf_lo else 2)
        assert p["branch"] == expect, (h, mE, p["branch"])
        w = eig([mE, mI])
        assert p["verdict"] == ("unstable-real" if max(w.real) > 0 else "stable") and (max(w.real) > 0) == (expect == 1)
    inside = [k for k, v in enumerate(res.axes[0][1]) if hf_lo < v < hf_hi]
    assert len(inside) == 8
    for k in inside:
        assert sorted(p["branch"] for p in allp if p["index"] == (k,)) == [0, 1, 2]
    # the table lists every state with its branch
    rows = res.table()
    assert len(rows) == 2 * len(allp) and {r["branch"] for r in rows} == {0, 1, 2}
    # the bifurcation figure: the low and high branches solid up to the folds, the middle one dashed
    from balkin.cli.sweep_report import bifurcation_figure, bifurcation_lines
    lines = bifurcation_lines(res)
    for a in ("E", "I"):
        mine = [(ln["branch"], ln["style"], ln["x"][0], ln["x"][-1]) for ln in lines if ln["population"] == a]
        assert mine == [(0, "solid", -1.0, found[0]["value"]), (1, "dashed", found[0]["value"], found[1]["value"]),
                        (2, "solid", found[1]["value"], 0.4)], mine
    fig = bifurcation_figure(res)
    drawn = [(ln.get_linestyle(), list(ln.get_xdata()), list(ln.get_ydata())) for ln in fig.axes[0].get_lines()]
    assert drawn[:len(lines)] == [("-" if ln["style"] == "solid" else "--", ln["x"], ln["y"]) for ln in lines]
    assert all(d[0] == ":" for d in drawn[len(lines):])          # the rest: the boundaries, vertical
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_2d_rows_warm_start_from_the_previous_row():
    """2-D: the first row (q_0) is continued along p; every later point (p_i, q_j) starts from its
    neighbour (p_i, q_(j-1)) in the previous row (the secant through the two previous rows from
    the third row on)."""
    res = sweep("ring_unstable", ["eps_E=0.5:0.6:3", "eps_I=0.25:0.3:4"], npos=16, slow=False)
    qv = res.axes[1][1]
    for p in res.points:
        i, j = p["index"]
        st = p["start"]
        if j == 0:
            assert st["parameter"] == "eps_E"
        else:
            assert st["parameter"] == "eps_I" and st["from"][-1] == qv[j - 1]
            assert st["method"] == ("previous" if j == 1 else "secant")
            if j >= 2:
                assert st["from"] == [qv[j - 2], qv[j - 1]]


# ---- a slow instability: a rank-one E-I point model whose inhibitory neurons relax fast ---------

def _rank_one_model():
    """f_a = -a_a x, sigma = 1, g = Phi, w = [[1, -beta], [1, -beta]] (rank one: Range(W) = span (1, 1)),
    h = (h, h).  Balance fixes only G_E - beta G_I = -h, so the manifold is a curve and the field has
    one slow eigenvalue on it (besides the covariances' -2 a_a)."""
    import sympy as sp

    import balkin
    from derive import Model, Phi, Point, Population
    x = sp.Symbol("x")
    a_E, a_I, beta, h = sp.symbols("a_E a_I beta h")
    model = Model(name="ei_rank_one", state=[x], space=Point(),
                  populations=[Population("E", drift=-a_E * x, diffusion=1, gain=Phi(x), drive=h, fraction=1),
                               Population("I", drift=-a_I * x, diffusion=1, gain=Phi(x), drive=h, fraction=1)],
                  kernel={("E", "E"): 1, ("E", "I"): -beta, ("I", "E"): 1, ("I", "I"): -beta},
                  parameters={a_E: 1.0, a_I: 1.0, beta: 1.2, h: 0.1})
    return balkin.compile(model)


def test_slow_instability_boundary_against_closed_form():
    """Independent closed form.  Stationary field: m_a = l / a_a (lambda = l (1, 1)), C_a = 1 / (2 a_a),
    G_a = Phi(m_a / c_a), c_a = sqrt(1 + C_a); with h = (beta - 1) / 2 = 0.1 balance holds at l = 0
    for every a_I (Phi(0) = 1/2), so D_a = phi(0) / c_a.  On the manifold (tangent t = (beta D_I, D_E)
    in (m_E, m_I)), m' = A m + l (1, 1) with l keeping D_E m_E' = beta D_I m_I' gives the slow
    eigenvalue  sigma = (a_I D_E - a_E beta D_I) / (beta D_I - D_E),  and the fast one mu = D_E - beta D_I
    (< 0 here).  sigma crosses 0 where a_I / c_E = a_E beta / c_I, i.e. a_I^2 + a_I / 2 = (a_E beta c_E)^2:
    a_I* = (-1/2 + sqrt(1/4 + 4 (a_E beta c_E)^2)) / 2.  The sweep locates it to 1e-8 with a real
    crossing eigenvalue 0, and every point's slow eigenvalue is sigma."""
    cm = _rank_one_model()
    a_E, beta = 1.0, 1.2
    c_E = math.sqrt(1 + 1 / (2 * a_E))
    K = (a_E * beta * c_E) ** 2
    star = (-0.5 + math.sqrt(0.25 + 4 * K)) / 2
    res = sweep(cm, ["a_I=0.6:3:7"], scheduler="serial")
    slow = [b for b in res.boundaries if b["type"] == "slow"]
    assert len(slow) == 1 and slow[0]["kind"] == "saddle-node"
    assert abs(slow[0]["value"] - star) < 1e-8, (slow[0]["value"], star)
    assert abs(slow[0]["eigenvalue"][0]) < 1e-8 and slow[0]["eigenvalue"][1] == 0
    assert not [b for b in res.boundaries if b["type"] != "slow"]
    for p in res.points:
        a_I = p["params"]["a_I"]
        c_I = math.sqrt(1 + 1 / (2 * a_I))
        D_E, D_I = norm.pdf(0) / c_E, norm.pdf(0) / c_I
        sigma = (a_I * D_E - a_E * beta * D_I) / (beta * D_I - D_E)
        (w,) = p["slow"].values()
        assert abs(w[0] - sigma) < 1e-9 and abs(p["fast"]["1"][0] - (D_E - beta * D_I)) < 1e-9
        assert p["verdict"] == ("slow-unstable" if a_I > star else "stable")


# ---- a local loss of balance on the ring: the demanded tuning becomes unreachable ---------------

def _max_cos_moment(g0, N):
    """Independent of the solvers: the largest lattice average of cos(theta_i) q_i over profiles with
    0 <= q_i <= 1 and lattice mean g0 (fill the positions of largest cos first: a fractional knapsack)."""
    c = np.sort(np.cos(2 * np.pi * np.arange(N) / N))[::-1]
    k = int(np.floor(g0 * N))
    return (c[:k].sum() + (g0 * N - k) * c[k]) / N


def test_ring_local_loss_of_balance_against_the_moment_bound():
    """ring_ei in its drive's tuning delta.  Balance fixes the moments of gbar, not gbar itself:
    per population the mean g0 = -M0^{-1} H (constant in delta: (0.3, 0.2)) and the cos moment
    <cos gbar> = g1 / 2 with g1 = -delta M1^{-1} H (g1_E = delta).  The demanded mean never leaves
    (0, 1); the balanced state ceases to exist where no activity profile with values in [0, 1] has
    both moments: <cos gbar_E> = delta / 2 reaching the largest cos moment at mean 0.3 on the
    lattice, delta* = 2 max_cos(0.3) = 0.51501551837 (N = 64; population I only at 0.842).  The
    sweep locates it to 1e-8 by the profile margin, whose values match the closed form
    t(delta): delta / 2 = (1 - 2t) max_cos((0.3 - t) / (1 - 2t)) (a profile in [t, 1 - t]); just
    inside the boundary the solved activity is pinned near 0 and 1 at some positions only, just
    beyond the solve fails."""
    from scipy.optimize import brentq

    from solvers.balance_errors import GainRangeExceeded
    from solvers.feasibility import profile_margins
    from solvers.lattice_coupling import LatticeCoupling
    from solvers.stationary import solve_balanced
    N = 64
    star = 2 * _max_cos_moment(0.3, N)
    assert 2 * _max_cos_moment(0.2, N) / (4 / 9) > star + 0.3           # E first
    res = sweep("ring_ei", ["delta=0.4:0.6:3"], slow=False, scheduler="serial")
    assert [p["status"] for p in res.points] == ["ok", "ok", "no-balance"]
    assert all(p["margin"] > 0.19 for p in res.points)                  # the mean is far inside
    (bd,) = res.boundaries
    assert bd["kind"] == "loss-of-balance" and bd["population"] == "E" and "profile margin" in bd["method"]
    assert abs(bd["value"] - star) < 1e-8, (bd["value"], star)
    for d in (0.3, 0.45, 0.55):
        t_exact = brentq(lambda t: d / 2 - (1 - 2 * t) * _max_cos_moment((0.3 - t) / (1 - 2 * t), N), -0.2, 0.29)
        got = profile_margins(LatticeCoupling(CompiledModel("ring_ei", {"delta": d}), N, 0.0))
        assert abs(got["E"] - t_exact) < 1e-10, (d, got, t_exact)
    st = solve_balanced("ring_ei", params={"delta": star - 1e-4}, npos=N, check_stability=False)
    gE = st.gbar[0]
    assert gE.min() < 1e-3 and gE.max() > 1 - 1e-3 and 0.01 < np.mean((gE > 1e-3) & (gE < 1 - 1e-3)) < 0.5
    with pytest.raises(GainRangeExceeded):
        solve_balanced("ring_ei", params={"delta": star + 1e-6}, npos=N, check_stability=False)
    # on a point the profile margin is the demanded-activity margin
    from solvers.feasibility import demanded_margin, profile_margin
    for h in (0.0, 0.05, 0.1, 0.2):
        cpl = LatticeCoupling(CompiledModel("ei_linear", {"h_E": h}), 1, 0.0)
        assert abs(profile_margin(cpl) - demanded_margin(cpl)) < 1e-12


@pytest.mark.slow
def test_particles_on_the_existing_side_of_a_fold():
    """ei_bistable at n = 400, swept in h_E from the middle (saddle) branch through its fold at
    h_E = 0.1789 onto the low branch: particle ensembles (6 seeds, linear response along the leading
    real eigenvector) at the grid point before the fold, once at each of the two coexisting states:
    at the low state the kick decays (steady), at the middle one it grows (growing), each at the
    predicted real rate within 3 standard errors over seeds.  About 15 s."""
    res = sweep("ei_bistable", ["h_E=-0.35:0.25:13"], n=400, check_particles=1, scheduler="serial",
                particle_settings={"seeds": 6})
    (fold,) = [b for b in res.boundaries if b["type"] == "fold"]
    assert [b["type"] for b in res.boundaries] == ["fold"]
    checks = res.particle_checks
    assert len(checks) == 2 and {c["branch"] for c in checks} == set(fold["branches"])
    for c in checks:
        assert c["check"] == "linear-response" and c["params"]["h_E"] < fold["value"]
        nu = c["predicted_eigenvalue"]
        assert nu[1] == 0.0
        assert c["predicted_state"] == ("growing" if c["side_verdict"] == "unstable-real" else "steady")
        assert c["measured_state"] == c["predicted_state"] and c["agrees"]
        assert abs(c["measured_rate"] - nu[0]) <= 3 * c["rate_se"], c


@pytest.mark.slow
def test_particles_on_both_sides_of_a_loss_of_balance():
    """ei_linear at n = 400 across its loss of balance at h_E = 1/15 (gbar_E = -W^{-1} h reaching 0):
    the finite-n state exists on both sides; particle ensembles (4 seeds, time averages over
    [2, 20]) started from it keep its activities, within 3 standard errors plus 0.005 (the
    finite-n equation's own error), on the balanced side and on the unbalanced one; on the balanced
    side a finite-n activity differs from the balanced limit's demanded one by far more than that
    tolerance (for I: 0.033 against 0.007), so the check distinguishes them.  About 30 s."""
    res = sweep("ei_linear", ["h_E=0.06:0.08:2"], n=400, check_particles=1, scheduler="serial",
                particle_settings={"seeds": 4})
    (bd,) = res.boundaries
    assert bd["kind"] == "loss-of-balance" and abs(bd["value"] - 1 / 15) < 1e-8
    checks = sorted(res.particle_checks, key=lambda c: c["params"]["h_E"])
    assert [c["check"] for c in checks] == ["activity"] * 2
    assert [c["predicted_state"] for c in checks] == ["unbalanced", "balanced"]
    assert checks[0]["demanded_activity"] is None
    for c in checks:
        assert c["agrees"], c
        for a in ("E", "I"):
            assert abs(c["measured_activity"][a] - c["predicted_activity"][a]) <= c["activity_tolerance"][a]
    bal = checks[1]            # a network at the limit's activities would fail the check (all must agree)
    assert any(abs(bal["predicted_activity"][a] - bal["demanded_activity"][a]) > 3 * bal["activity_tolerance"][a]
               for a in ("E", "I"))
