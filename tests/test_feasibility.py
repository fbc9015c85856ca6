"""One feasibility check (solvers.feasibility.check_feasible), run first by every command: a model
whose balance demands an activity the gain cannot deliver gets the same one-line diagnosis from
solve --stationary (limit and --n), --kinetic, --field, spectrum and simulate, naming the population,
the demanded activity and the gain's range, with exit status 2.  And `solve --stationary` says at
which time it solved a time-dependent model: refused without --t, recorded with it."""
import json
import sys

import numpy as np
import pytest
import sympy as sp

from derive import Model, Phi, Point, Population
from derive import t as tsym
from balkin.cli import main
from derive.codegen import compile_module
from solvers.balance_errors import GainRangeExceeded
from solvers.compiled import CompiledModel
from solvers.feasibility import check_feasible

# W = [[1, -2, -1], [1, -1.5, -1], [1, -1, -2]] (det -0.5) and h = -W g* with g* = (0.3, 1, 0.2):
# balance demands gbar_I1 = 1, the supremum of Phi, which no density attains.
W3 = {("E", "E"): 1, ("E", "I1"): -2, ("E", "I2"): -1,
      ("I1", "E"): 1, ("I1", "I1"): -sp.Rational(3, 2), ("I1", "I2"): -1,
      ("I2", "E"): 1, ("I2", "I1"): -1, ("I2", "I2"): -2}
H3 = {"E": sp.Rational(19, 10), "I1": sp.Rational(14, 10), "I2": sp.Rational(11, 10)}


def _install(monkeypatch, model):
    """Make the in-memory module loadable by name, as generated/NAME.py would be."""
    mod = compile_module(model)
    monkeypatch.setitem(sys.modules, f"generated.{model.name}", mod)
    return mod


@pytest.fixture
def infeasible3(monkeypatch):
    x = sp.Symbol("x")
    model = Model(name="ei3_infeasible", state=[x], space=Point(),
                  populations=[Population(a, drift=-x, diffusion=1, gain=Phi(x), drive=H3[a])
                               for a in ("E", "I1", "I2")],
                  kernel=W3)
    _install(monkeypatch, model)
    return model.name


def test_check_feasible_names_population_demand_and_range(infeasible3):
    with pytest.raises(GainRangeExceeded) as exc:
        check_feasible(infeasible3)
    e = exc.value
    assert e.population == "I1" and e.demanded == pytest.approx(1.0, abs=1e-12)
    assert e.gain_range == (0.0, 1.0)
    msg = str(e)
    assert "gbar_I1 = 1 " in msg and "[0, 1]" in msg and "no balanced state exists" in msg


COMMANDS = [
    ["solve", "{m}", "--stationary"],
    ["solve", "{m}", "--stationary", "--n", "1000"],
    ["solve", "{m}", "--kinetic", "--T", "1"],
    ["solve", "{m}", "--kinetic", "--n", "1000", "--T", "1"],
    ["solve", "{m}", "--field", "--T", "1"],
    ["spectrum", "{m}"],
    ["spectrum", "{m}", "--n", "1000"],
    ["simulate", "{m}", "--n", "100", "--T", "1", "--dt", "0.01"],
]


def test_every_command_gives_the_same_diagnosis(infeasible3, capsys):
    """Exit status 2 and the same one-line message (after the command's name) from every command."""
    diagnoses = set()
    for cmd in COMMANDS:
        argv = [a.format(m=infeasible3) for a in cmd]
        rc = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2, (argv, rc, err)
        assert len(err) == 1, (argv, err)
        line = err[0]
        assert line.startswith(f"balkin {argv[0]}: error: "), (argv, line)
        diagnoses.add(line.split(": error: ", 1)[1])
    assert len(diagnoses) == 1, diagnoses
    (msg,) = diagnoses
    assert "gbar_I1 = 1 " in msg and "range of the gain g_I1, [0, 1]" in msg


@pytest.fixture
def stimulated(monkeypatch):
    """ei_linear with an O(1) input u_E = sin(t)."""
    x = sp.Symbol("x")
    model = Model(name="ei_stimulated", state=[x], space=Point(),
                  populations=[Population("E", drift=-x, diffusion=1, gain=Phi(x), drive=sp.Rational(1, 10),
                                          input=sp.sin(tsym)),
                               Population("I", drift=-x, diffusion=1, gain=Phi(x), drive=sp.Rational(6, 100))],
                  kernel={("E", "E"): 1, ("E", "I"): -2, ("I", "E"): 1, ("I", "I"): -sp.Rational(9, 5)})
    _install(monkeypatch, model)
    return model.name


def test_stationary_refuses_a_time_dependent_model_without_t(stimulated, capsys):
    assert main(["solve", stimulated, "--stationary"]) == 2
    err = capsys.readouterr().err
    assert "input of E" in err and "--t" in err


def test_stationary_at_a_given_time_is_recorded(stimulated, capsys, tmp_path):
    """With --t the frozen problem at that time is solved: the multiplier absorbs the input, so
    lambda_E(t) = lambda_E(0) - sin(t) with the same gbar and means; the time is printed and in the
    JSON."""
    recs = {}
    for tt in (0.0, 0.5):
        js = tmp_path / f"s{tt}.json"
        assert main(["solve", stimulated, "--stationary", "--t", str(tt), "--json", str(js)]) == 0
        out = capsys.readouterr().out
        assert f"frozen at t = {tt:g}" in out
        recs[tt] = json.loads(js.read_text())
        assert recs[tt]["t"] == tt and recs[tt]["time_dependent"] == ["input of E"]
    np.testing.assert_allclose(recs[0.5]["E"]["lambda"][0], recs[0.0]["E"]["lambda"][0] - np.sin(0.5), atol=1e-10)
    np.testing.assert_allclose(recs[0.5]["E"]["mean"], recs[0.0]["E"]["mean"], atol=1e-10)
    np.testing.assert_allclose(recs[0.5]["I"]["lambda"], recs[0.0]["I"]["lambda"], atol=1e-10)


def test_feasible_models_pass():
    for name in ("ei_linear", "ring_ei", "ei_multiplicative"):
        assert check_feasible(CompiledModel(name)) is None
