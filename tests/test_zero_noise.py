"""Zero or vanishing noise (issue 14): a deterministic population (diffusion = 0) is derived and
generated with its stationary closed forms skipped and said so (naming the population); a diffusion
that vanishes on part of the line does not crash the printer.  No raw traceback anywhere."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from derive import Model, Phi, Point, Population
from derive.codegen import compile_module
from derive.derivation import derive
from derive.render_text import render

ROOT = Path(__file__).resolve().parent.parent
x = sp.Symbol("x")
h, J = sp.symbols("h J")


def _model(name, sigma_I):
    return Model(name=name, state=[x], space=Point(),
                 populations=[Population("E", drift=-x, diffusion=1, gain=Phi(x), drive=h),
                              Population("I", drift=-x, diffusion=sigma_I, gain=Phi(x), drive=0.6 * h)],
                 kernel={("E", "E"): J, ("E", "I"): -2 * J, ("I", "E"): J, ("I", "I"): -1.8 * J},
                 parameters={h: 0.1, J: 1.0})


def test_deterministic_population_derives_and_generates_in_memory():
    model = _model("zn_det", 0)
    d = derive(model)
    pi, pe = d.populations["I"], d.populations["E"]
    assert pi.deterministic and not pe.deterministic
    assert pi.stationary is None and pe.stationary is not None
    assert "population I" in pi.stationary_skipped and "diffusion = 0" in pi.stationary_skipped
    text = render(d)
    assert "[I] stationary density: skipped (population I is deterministic" in text
    assert "zoo" not in text
    mod = compile_module(model)
    assert mod.DETERMINISTIC == {"E": False, "I": True}
    assert set(mod.STATIONARY_SKIPPED) == {"I"} and "population I" in mod.STATIONARY_SKIPPED["I"]
    assert mod.STATIONARY_CLOSED_FORM == {"E": True, "I": False}
    assert not hasattr(mod, "potential_integrand_I") and not hasattr(mod, "log_sigma2_I")
    assert hasattr(mod, "potential_integrand_E")
    # what the particle and field solvers need is there and exact
    xs = np.linspace(-3, 3, 7)
    assert np.all(np.asarray(mod.diffusion_I(xs, 0.0)[0][0]) == 0)
    np.testing.assert_array_equal(mod.drift_I(xs, 0.0)[0], -xs)
    np.testing.assert_array_equal(mod.fp_diffusion_I(xs, 0.0)[0][0], 0)
    np.testing.assert_array_equal(mod.field_cov_rhs_I(np.full(7, 0.5), 0.0)[0], -1.0)
    np.testing.assert_allclose(mod.gain_generator_I(xs, 0.0),
                               -xs * np.exp(-xs ** 2 / 2) / np.sqrt(2 * np.pi), rtol=1e-13)


def _write_model(tmp_path, name, sigma_text):
    src = (ROOT / "models" / "ei_linear.py").read_text()
    old = 'Population("I", drift=-x, diffusion=1,'
    assert old in src
    src = src.replace('name="ei_linear"', f'name="{name}"').replace(
        old, f'Population("I", drift=-x, diffusion={sigma_text},')
    path = tmp_path / f"{name}.py"
    path.write_text(src)
    return path


def _run(*args):
    return subprocess.run([sys.executable, "-m", "balkin", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_deterministic_population_via_the_cli(tmp_path):
    path = _write_model(tmp_path, "zn_cli", "0")
    r = _run("derive", path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stdout.splitlines() if "skipped" in ln]
    assert len(lines) == 1 and "population I is deterministic (diffusion = 0)" in lines[0]
    out = tmp_path / "gen"
    out.mkdir()
    r = _run("generate", "--out", out, path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "population I" in err[0] and "diffusion = 0" in err[0], r.stderr
    text = (out / "zn_cli.py").read_text()
    assert "STATIONARY_SKIPPED = {'I': " in text and "DETERMINISTIC = {'E': False, 'I': True}" in text
    # byte-identical on regeneration
    r2 = _run("generate", "--check", "--out", out, path)
    assert r2.returncode == 0 and "fresh" in r2.stdout


@pytest.mark.parametrize("sigma", [x, sp.Piecewise((x, x > 0), (0, True)), sp.Max(x, 0)],
                         ids=["x", "piecewise", "max"])
def test_diffusion_vanishing_on_part_of_the_line_generates(sigma):
    model = _model("zn_vanish", sigma)
    mod = compile_module(model)
    assert mod.DETERMINISTIC == {"E": False, "I": False} and mod.STATIONARY_SKIPPED == {}
    pos = np.array([0.5, 1.0, 2.0])
    with np.errstate(all="raise"):
        i0, i1 = mod.potential_integrand_I(pos, 0.0)
        ls2 = mod.log_sigma2_I(pos, 0.0)
    # where sigma = x > 0: 2 f / sigma^2 = -2 / x, 2 / sigma^2, log sigma^2
    np.testing.assert_allclose(i0, -2 / pos, rtol=1e-14)
    np.testing.assert_allclose(i1, 2 / pos ** 2, rtol=1e-14)
    np.testing.assert_allclose(ls2, np.log(pos ** 2), rtol=1e-14)
    neg = np.array([-2.0, -0.5])
    with np.errstate(all="ignore"):
        i0n = np.asarray(mod.potential_integrand_I(neg, 0.0)[0], float)
        ls2n = np.asarray(mod.log_sigma2_I(neg, 0.0), float)
    if sigma == x:
        # log sigma^2 = log(x^2), not 2 log(x) (which is nan for x < 0)
        np.testing.assert_allclose(ls2n, np.log(neg ** 2), rtol=1e-14)
        np.testing.assert_allclose(i0n, -2 / neg, rtol=1e-14)
    else:
        # sigma = 0 there: the density does not exist; never a finite wrong number
        assert not np.any(np.isfinite(i0n)) and not np.any(np.isfinite(ls2n))
        assert not mod.STATIONARY_CLOSED_FORM["I"]


def test_stationary_density_of_a_deterministic_population_names_why():
    from solvers.balance_errors import DensityError
    from solvers.compiled import CompiledModel
    from solvers.density1d import DensityFamily
    cm = CompiledModel(compile_module(_model("zn_density", 0)))
    DensityFamily(cm, "E")                                  # the noisy population has one
    with pytest.raises(DensityError, match=r"population I: no stationary density: .*deterministic"):
        DensityFamily(cm, "I")
