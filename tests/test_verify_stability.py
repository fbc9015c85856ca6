"""verify knows about stability and about its own step (issue 9, item 2).

* Sizes at which the finite-n state is unstable (eigenvalues of <f'> + sqrt(n) W D, DESIGN.md §4b)
  fail verify, naming the size and the eigenvalue, before any particle run.
* With unstable=True (--unstable) those sizes are tested for the frequency and growth of the unstable
  mode instead (point Hopf model and the ring model ring_unstable).
* The step's own bias m(dt) - m(2 dt) is reported per quantity and fails verify when it exceeds
  the statistical tolerance: an intrinsically fast model (f = -8x) at dt = 0.1 fails, at a fine dt
  it passes.
"""
import math

import pytest
import sympy as sp

from derive import Model, Phi, Point, Population
from derive.codegen import compile_module
from solvers.compiled import CompiledModel
from solvers.verify import VerifySettings, verify
from test_fast_dynamics import hopf_model


@pytest.fixture(scope="module")
def hopf():
    return hopf_model(-1.3)


def test_unstable_size_fails_naming_size_and_eigenvalue(hopf):
    rep = verify(hopf, VerifySettings(sizes=(400, 1600, 10_000)), progress=False)
    assert not rep.passed and not rep.per_n                      # no stationary comparison was made
    msg = rep.checks["stability"]["message"]
    assert "n = 10000" in msg and "0.6827" in msg and "n = 400 " not in msg
    stab = {e["n"]: e for e in rep.stability}
    assert stab[400]["stable"] and stab[1600]["stable"] and not stab[10_000]["stable"]
    # the finite-n rate is -1 + sqrt(n) mu: stable at small n, unstable at large n
    assert stab[400]["leading"][0] < 0 < stab[10_000]["leading"][0]


def test_unstable_regime_point_model(hopf):
    rep = verify(hopf, VerifySettings(sizes=(10_000,), unstable=True, seeds=4), progress=False)
    c = rep.checks["oscillation n=10000"]
    assert rep.passed, c["message"]
    assert abs(c["frequency"] / c["predicted"][1] - 1) < 0.05


def test_unstable_regime_ring_model():
    rep = verify("ring_unstable", VerifySettings(sizes=(6400,), unstable=True, seeds=3), progress=False)
    c = rep.checks["oscillation n=6400"]
    assert rep.passed, c["message"]
    assert abs(c["rate"] - c["predicted"][0]) < 0.1 * c["predicted"][0]


def _fast_ou(k=8.0):
    x = sp.Symbol("x")
    pops = [Population(p, drift=-k * x, diffusion=math.sqrt(2 * k), gain=Phi(x), drive=h, fraction=1)
            for p, h in (("E", 0.1), ("I", 0.06))]
    return CompiledModel(compile_module(Model(
        name="fast_ou", state=[x], space=Point(), populations=pops,
        kernel={("E", "E"): 1.0, ("E", "I"): -2.0, ("I", "E"): 1.0, ("I", "I"): -1.8}, parameters={})))


def test_dt_bias_check_fails_a_coarse_step_and_passes_a_fine_one():
    cm = _fast_ou()
    coarse = verify(cm, VerifySettings(sizes=(1000, 2000), seeds=3, T=6, t0=2, dt=0.1), progress=False)
    c = coarse.checks["dt-bias"]
    assert not c["passed"] and not coarse.passed and c["max_ratio"] > 1
    assert "dt = " in c["message"] and "n = " in c["message"]
    for e in coarse.per_n:                                   # reported per quantity
        assert {"dt_bias", "dt_bias_se", "dt_bias_ratio"} <= set(e["gbar"])
    fine = verify(cm, VerifySettings(sizes=(1000, 2000), seeds=3, T=6, t0=2, dt=0.005), progress=False)
    assert fine.checks["dt-bias"]["passed"], fine.checks["dt-bias"]["message"]


def test_cli_verify_unstable_flag(capsys):
    from balkin.cli import main
    assert main(["verify", "ring_unstable", "--sizes", "400", "--seeds", "2"]) == 1
    err = capsys.readouterr().err
    assert "FAIL stability" in err and "n = 400" in err
    assert main(["verify", "ring_unstable", "--sizes", "6400", "--seeds", "3", "--unstable"]) == 0
    out = capsys.readouterr().out
    assert "PASS oscillation n=6400" in out


def test_verify_and_demo_take_the_kinetic_grid():
    """verify and demo choose the kinetic grid the way solve --kinetic does (automatic by default),
    and accept --nx / --xmin / --xmax; a grid that cannot resolve the density is refused before any
    particle run."""
    from solvers.kinetic import GridError
    from solvers.verify import _kinetic_window
    s = VerifySettings(sizes=(400,), T=1.0, t0=0.5, nx=300, xmin=-7.0, xmax=5.0)
    w = _kinetic_window(CompiledModel("ei_linear"), 400, s)
    for x in w["x"]:
        assert len(x) == 300 and x[0] == pytest.approx(-7.0 + 6.0 / 300) and x[-1] == pytest.approx(5.0 - 6.0 / 300)
    with pytest.raises(GridError, match="cells per"):
        verify("ei_linear", VerifySettings(sizes=(400,), nx=20, xmin=-30.0, xmax=30.0), progress=False)
    with pytest.raises(ValueError, match="both"):
        verify("ei_linear", VerifySettings(sizes=(400,), xmin=-3.0), progress=False)


def test_cli_grid_flags(capsys):
    from balkin.cli import build_parser, main
    assert main(["verify", "ei_linear", "--sizes", "400", "--nx", "8"]) == 2
    assert "16" in capsys.readouterr().err
    args = build_parser().parse_args(["demo", "--quick", "--nx", "400", "--xmin", "-6", "--xmax", "4"])
    assert (args.nx, args.xmin, args.xmax) == (400, -6.0, 4.0)


def test_verify_diagnoses_infeasible_balance_like_every_command(monkeypatch, capsys):
    """verify runs the same feasibility check first (issue 9, item 5): population, demanded activity
    and the gain's range, one line, exit status 2."""
    import sys

    from balkin.cli import main
    from solvers.balance_errors import GainRangeExceeded
    from test_feasibility import H3, W3
    x = sp.Symbol("x")
    model = Model(name="ei3_infeasible_v", state=[x], space=Point(),
                  populations=[Population(a, drift=-x, diffusion=1, gain=Phi(x), drive=H3[a])
                               for a in ("E", "I1", "I2")], kernel=W3)
    monkeypatch.setitem(sys.modules, f"generated.{model.name}", compile_module(model))
    with pytest.raises(GainRangeExceeded, match="gbar_I1 = 1 "):
        verify(model.name, VerifySettings(sizes=(400,)), progress=False)
    assert main(["verify", model.name, "--sizes", "400"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "I1" in err[0] and "[0, 1]" in err[0]
