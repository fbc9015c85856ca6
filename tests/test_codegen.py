"""Generated code equals the derived expressions; regeneration is byte-identical; stale modules
are refused; generated modules and solvers never import SymPy."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derive import Model, Phi, Point, Population
from derive.codegen import compile_module, function_specs, generate_source
from derive.loader import load_model, model_files
from solvers.loading import recorded_path as relative_path
from solvers.loading import StaleGeneratedModule, check_fresh, load_generated

ROOT = Path(__file__).resolve().parent.parent
MODELS = model_files(ROOT)


def _flatten(obj):
    if isinstance(obj, (list, tuple)):
        return [y for o in obj for y in _flatten(o)]
    return [obj]


def _sample_args(model, names, rng, npts=7):
    """Random points: state in [0.2, 2] (inside every model's domain, incl. sqrt(x) noise),
    angles in [0, 2 pi), t in [0, 3], lam/means in [-1, 1], variances/slopes in [0.1, 2]."""
    out = {}
    for nm in names:
        if nm in [s.name for s in model.state]:
            out[nm] = rng.uniform(0.2, 2.0, npts)
        elif nm in [s.name for s in model.space.theta + model.space.phi]:
            out[nm] = rng.uniform(0, 2 * np.pi, npts)
        elif nm == "t":
            out[nm] = rng.uniform(0, 3, npts)
        elif nm.startswith("C_") or nm == "var" or nm.startswith("D_"):
            out[nm] = rng.uniform(0.1, 2.0, npts)
        else:
            out[nm] = rng.uniform(-1, 1, npts)
    return out


def assert_module_matches_derivation(model, module, rng):
    """Every generated function equals the lambdified derived expression (rtol 1e-12)."""
    values = {s: v for s, v in model.parameters.items()}
    specs = function_specs(model)
    assert specs, "no generated functions"
    for name, args, outputs, as_array in specs:
        fn = getattr(module, name)
        if as_array:
            # parameter-only (or t-only) outputs: evaluate at scalar arguments
            kw = {a: 0.7 for a in args}
            got = np.asarray(fn(**kw), dtype=float).ravel()
            syms = {sp.Symbol(a, real=True): kw[a] for a in args}
            want = np.array([float(sp.sympify(e).subs(values).subs(syms)) for e in _flatten(outputs)])
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=name)
            continue
        kw = _sample_args(model, args, rng)
        got = _flatten(fn(*[kw[a] for a in args]))
        syms = [sp.Symbol(a, real=True) for a in args]
        for g, expr in zip(got, _flatten(outputs)):
            expr = sp.sympify(expr).subs(values)
            # 'mpmath' evaluation of the SymPy expression: independent of the generated printer
            f = sp.lambdify(syms, expr, modules=["mpmath"])
            want = np.array([complex(f(*[kw[a][i] for a in args])).real for i in range(len(kw[args[0]]))]) \
                if args else np.array([float(expr)])
            g = np.broadcast_to(np.asarray(g, dtype=float), want.shape)
            np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-13, err_msg=f"{model.name}.{name}: {expr}")


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_committed_module_matches_derivation(path, rng):
    model = load_model(path)
    module = load_generated(model.name)
    assert_module_matches_derivation(model, module, rng)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_committed_module_is_fresh_and_byte_identical(path):
    """Regenerating gives exactly the committed bytes (so `balkin generate --check` passes)."""
    model = load_model(path)
    text = generate_source(model, path, recorded_path=relative_path(path))
    assert (ROOT / "generated" / f"{model.name}.py").read_text() == text


def test_regeneration_is_byte_identical_across_processes(tmp_path):
    """Two fresh interpreters with different hash seeds write identical files."""
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / seed
        out.mkdir()
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run([sys.executable, "-m", "balkin", "generate", "models/ring_ei.py",
                        "--out", str(out)], cwd=ROOT, env=env, check=True, capture_output=True)
        outs.append((out / "ring_ei.py").read_bytes())
    assert outs[0] == outs[1]


def test_stale_module_is_refused(tmp_path):
    module = load_generated("ei_linear")
    (tmp_path / "models").mkdir()
    src = (ROOT / "models" / "ei_linear.py").read_text()
    (tmp_path / "models" / "ei_linear.py").write_text(src)
    check_fresh(module, root=tmp_path)          # unchanged: accepted
    (tmp_path / "models" / "ei_linear.py").write_text(src.replace("h_I: 0.06", "h_I: 0.07"))
    with pytest.raises(StaleGeneratedModule, match=r"balkin generate models/ei_linear.py"):
        check_fresh(module, root=tmp_path)


def test_generate_check_names_stale_files(tmp_path, capsys):
    from balkin.cli import main
    assert main(["generate", "models/ei_linear.py", "--out", str(tmp_path)]) == 0
    assert main(["generate", "--check", "models/ei_linear.py", "--out", str(tmp_path)]) == 0
    target = tmp_path / "ei_linear.py"
    target.write_text(target.read_text().replace("w_II=-1.8", "w_II=-1.7"))
    capsys.readouterr()
    assert main(["generate", "--check", "models/ei_linear.py", "--out", str(tmp_path)]) == 1
    assert "stale: " in capsys.readouterr().out and "ei_linear.py" in target.name


def test_missing_generated_module_says_how_to_create_it():
    with pytest.raises(FileNotFoundError, match="balkin generate models/no_such_model.py"):
        load_generated("no_such_model")


def test_generated_modules_and_solvers_do_not_import_sympy():
    names = [p.stem for p in MODELS]
    code = ("import sys, importlib\n"
            f"for n in {names!r}: importlib.import_module('generated.' + n)\n"
            "import pkgutil, solvers, balkin.cli\n"
            "for m in pkgutil.iter_modules(balkin.cli.__path__): importlib.import_module('balkin.cli.' + m.name)\n"
            "for m in pkgutil.iter_modules(solvers.__path__): importlib.import_module('solvers.' + m.name)\n"
            "assert 'sympy' not in sys.modules, 'sympy was imported'\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_parameter_overrides_are_keywords():
    module = load_generated("ei_linear")
    assert module.drive_E(0.0) == pytest.approx(0.1)
    assert module.drive_E(0.0, h_E=0.5) == pytest.approx(0.5)
    with pytest.raises(TypeError):
        module.drive_E(0.0, h_e=0.5)     # a typo is an error, not silently ignored


# ---- property-based: random polynomial models ------------------------------------------------
coef = st.integers(-3, 3)


@st.composite
def polynomial_models(draw):
    x = sp.Symbol("x")
    a, b = sp.symbols("a b")
    c = [draw(coef) for _ in range(4)]
    drift = c[0] * a + c[1] * x + sp.Rational(c[2], 2) * x ** 2 - sp.Rational(abs(c[3]) + 1, 3) * x ** 3
    s0 = draw(st.integers(1, 3))
    s1 = draw(st.integers(0, 2))
    diffusion = s0 + s1 * x ** 2 if draw(st.booleans()) else s0
    g = draw(st.sampled_from(["phi", "poly", "exp"]))
    gain = {"phi": Phi(b * x), "poly": x + x ** 2 / 4, "exp": sp.exp(x / 2)}[g]
    noise = draw(st.sampled_from(["ito", "stratonovich"]))
    return Model(name="poly", state=[x], space=Point(),
                 populations=[Population("E", drift=drift, diffusion=diffusion, gain=gain, drive=a),
                              Population("I", drift=-x, diffusion=1, gain=Phi(x), drive=a / 2)],
                 kernel={("E", "E"): 1, ("E", "I"): -2 * b, ("I", "E"): 1, ("I", "I"): -b},
                 parameters={a: 0.3, b: 1.5}, noise=noise)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(polynomial_models())
def test_random_polynomial_models_generate_exactly(model):
    rng = np.random.default_rng(7)
    module = compile_module(model)
    assert_module_matches_derivation(model, module, rng)


def test_generate_refuses_to_overwrite_its_model_file(tmp_path):
    from balkin.cli import main
    model = tmp_path / "ei_linear.py"
    model.write_text((ROOT / "models" / "ei_linear.py").read_text())
    assert main(["generate", str(model), "--out", str(tmp_path)]) == 2
    assert model.read_text() == (ROOT / "models" / "ei_linear.py").read_text()
