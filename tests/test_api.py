"""The public Python API (issue 10): docs/example_api.py runs; every result is keyed by population
name in population() / to_dict() / to_json(), consistent with its arrays; models load by name,
by file, and from memory."""
import json
import runpy
from pathlib import Path

import numpy as np
import pytest

import balkin

ROOT = Path(__file__).resolve().parent.parent


def test_the_documented_example_runs(capsys):
    runpy.run_path(str(ROOT / "docs" / "example_api.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "verify: PASS" in out and "balanced gbar" in out


@pytest.fixture(scope="module")
def cm():
    return balkin.load("ei_linear")


def test_load_by_name_file_and_memory(cm):
    by_file = balkin.load(ROOT / "models" / "ei_linear.py")
    assert by_file.populations == cm.populations == ("E", "I")
    mem = balkin.compile(balkin.model_from_file(ROOT / "models" / "ei_linear.py"))
    xs = np.linspace(-3, 3, 7)
    np.testing.assert_array_equal(mem.module.gain_E(xs, 0.0), cm.module.gain_E(xs, 0.0))
    assert balkin.load("ei_linear", params={"h_E": 0.2}).params["h_E"] == 0.2


def _check_keyed(res, cm, **kw):
    rec = res.to_dict(**kw)
    text = res.to_json(**kw)
    assert json.loads(text) == rec
    for ia, a in enumerate(cm.populations):
        block = res.population(a, **kw)
        assert block == rec[a] and "gbar" in block
    with pytest.raises(KeyError, match="no population 'X'"):
        res.population("X", **kw)
    return rec


def test_results_are_keyed_by_population_name(cm, tmp_path):
    st = balkin.stationary(cm)
    rec = _check_keyed(st, cm)
    np.testing.assert_allclose(rec["I"]["gbar"], st.gbar[1])
    np.testing.assert_allclose(rec["E"]["lambda"], st.lam[0])
    kin = balkin.kinetic(cm, T=1.0, dt=0.1, grid_convergence=False)
    rec = _check_keyed(kin, cm)
    np.testing.assert_allclose(rec["E"]["mean"], kin.mean[-1, 0])
    fld = balkin.field(cm, T=1.0)
    _check_keyed(fld, cm)
    sim = balkin.simulate(cm, n=200, T=1.0, dt=0.01, seed=1)
    rec = _check_keyed(sim, cm, t0=0.5)
    assert rec["n"] == 200
    st.to_json(tmp_path / "st.json")
    assert json.loads((tmp_path / "st.json").read_text()) == st.to_dict()


def test_simulate_npz_from_the_cli(tmp_path, capsys):
    from balkin.cli import main
    out = tmp_path / "sim.npz"
    assert main(["simulate", "ei_linear", "--n", "200", "--T", "0.5", "--dt", "0.01", "--seed", "3",
                 "--npz", str(out)]) == 0
    sim = balkin.simulate("ei_linear", n=200, T=0.5, dt=0.01, seed=3)
    with np.load(out) as z:
        assert list(z["populations"]) == ["E", "I"]
        for key, arr in (("times", sim.times), ("mean", sim.mean), ("gbar", sim.gbar), ("lambda", sim.lam)):
            np.testing.assert_array_equal(z[key], arr)
