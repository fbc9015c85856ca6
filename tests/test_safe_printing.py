"""Generated code does not overflow (issue 9, item 4): softplus, logistic and log Phi gains, their
slopes, drift and Milstein terms are printed as logaddexp / expit / log_ndtr and evaluate finitely and
accurately at |x| up to 1000 under np.errstate(all="raise")."""
import mpmath
import numpy as np
import pytest
import sympy as sp

from derive import Model, Phi, Point, Population
from derive.codegen import compile_module, function_specs
from derive.printer import pycode, safe_form

XS = np.array([-1000.0, -200.0, -50.0, 0.0, 50.0, 200.0, 1000.0])
TINY = np.finfo(float).tiny          # below it a double has lost relative precision (subnormal or 0)

x = sp.Symbol("x")
beta, th, J, h, c = sp.symbols("beta th J h c")

GAINS = {
    "softplus": (sp.log(sp.exp(beta * (x - th)) + 1) / beta, "numpy.logaddexp("),
    "logistic": (1 / (1 + sp.exp(-beta * x)), "scipy.special.expit("),
    "logistic_ratio": (sp.exp(beta * x) / (1 + sp.exp(beta * x)), "scipy.special.expit("),
}


def _model(name, gain, drift=-x, diffusion=1):
    return Model(name=name, state=[x], space=Point(),
                 populations=[Population("E", drift=drift, diffusion=diffusion, gain=gain, drive=h)],
                 kernel={("E", "E"): -J},
                 parameters={beta: 2.0, th: 0.5, J: 1.0, h: 0.3, c: 0.7})


def _reference(model, expr, xs, dps=1500):
    """The original SymPy expression evaluated by mpmath at ``dps`` digits (erf(v) written as
    2 ncdf(sqrt(2) v) - 1, an exact identity, so that 1 + erf(v) does not cancel in the left tail:
    mpmath's ncdf uses erfc there)."""
    expr = sp.sympify(expr).subs(model.parameters)
    ncdf = sp.Function("ncdf")
    expr = expr.replace(sp.erf, lambda a: 2 * ncdf(sp.sqrt(2) * a) - 1)
    f = sp.lambdify([model.state[0], sp.Symbol("t", real=True)], expr,
                    modules=[{"ncdf": mpmath.ncdf}, "mpmath"])
    with mpmath.workdps(dps):
        return np.array([float(f(mpmath.mpf(v), 0)) for v in xs])


def _flatten(obj):
    if isinstance(obj, (list, tuple)):
        return [y for o in obj for y in _flatten(o)]
    return [obj]


def _check(model, module, name, outputs, xs=XS):
    fn = getattr(module, name)
    with np.errstate(all="raise"):
        got = fn(xs, 0.0)
    got_flat = [np.asarray(g, float) for g in _flatten(got)]
    outs = _flatten(outputs)
    for g, expr in zip(got_flat, outs):
        want = _reference(model, expr, xs)
        assert np.all(np.isfinite(g)), f"{name}: {g}"
        big = np.abs(want) >= TINY
        np.testing.assert_allclose(g[big], want[big], rtol=1e-12, atol=0, err_msg=f"{name}: {expr}")
        # values that underflow in double precision: the result is 0 or subnormal, never garbage
        assert np.all(np.abs(g[~big]) < 2 * TINY), f"{name}: {g[~big]} should underflow like {want[~big]}"


def _specs(model):
    return {name: outputs for name, _, outputs, _ in function_specs(model)}


@pytest.mark.parametrize("kind", sorted(GAINS))
def test_gain_and_slope_are_finite_and_exact_at_large_x(kind):
    gain, marker = GAINS[kind]
    model = _model(f"safe_{kind}", gain)
    module = compile_module(model)
    specs = _specs(model)
    for name in ("gain_E", "gain_slope_E", "drift_E", "gain_generator_E"):
        _check(model, module, name, specs[name])
    src = module.__source__
    assert marker in src
    # the slope of a softplus is a logistic; the logistic's slope a product of logistics
    slope_src = src[src.index("def gain_slope_E"):src.index("def gain_generator_E")]
    assert "scipy.special.expit(" in slope_src and "numpy.exp(" not in slope_src


def test_log_phi_drift_is_log_ndtr():
    model = _model("safe_logphi", Phi(x), drift=-x + c * sp.log(Phi(x)))
    module = compile_module(model)
    specs = _specs(model)
    for name in ("drift_E", "fp_velocity_E", "gain_E", "gain_slope_E"):
        _check(model, module, name, specs[name])
    drift_src = module.__source__[module.__source__.index("def drift_E"):]
    assert "scipy.special.log_ndtr(x)" in drift_src.split("\n\n\n")[0]


def test_softplus_diffusion_milstein_is_safe():
    sigma = sp.log(1 + sp.exp(x))
    model = _model("safe_sigma", 1 / (1 + sp.exp(-beta * x)), diffusion=sigma)
    module = compile_module(model)
    specs = _specs(model)
    for name in ("diffusion_E", "milstein_E", "fp_diffusion_E"):
        _check(model, module, name, specs[name])


def test_piecewise_softplus_keeps_working():
    """A softplus written with Piecewise (to avoid overflow) still evaluates; numpy.select evaluates
    every branch, so the branches are printed safely too."""
    gain = sp.Piecewise((x, x > 30), (sp.log(1 + sp.exp(x)), True))
    model = _model("safe_piecewise", gain)
    module = compile_module(model)
    specs = _specs(model)
    for name in ("gain_E", "gain_slope_E"):
        _check(model, module, name, specs[name])


def test_rewrites_on_expression_trees():
    """The patterns of the printer docstring, including the expanded forms derivations produce."""
    xr = sp.Symbol("x", real=True)
    b = sp.Symbol("b", positive=True)
    cases = [
        (sp.log(sp.exp(xr) + 3), "numpy.logaddexp(0, x - numpy.log(3)) + numpy.log(3)"),
        (1 / (sp.exp(xr) + 2 + sp.exp(-xr)), "scipy.special.expit(-x)*scipy.special.expit(x)"),
        (sp.log((1 - sp.erf(xr / sp.sqrt(2))) / 2), "scipy.special.log_ndtr(-x)"),
        (sp.exp(-xr ** 2 / 2) / Phi(xr), "2/scipy.special.erfcx(-1/2*numpy.sqrt(2)*x)"),
        (sp.exp(-xr) / Phi(xr), "numpy.exp(-x - scipy.special.log_ndtr(x))"),
    ]
    for expr, text in cases:
        assert pycode(safe_form(expr, [xr])) == text, expr
    # no state-dependent exp in a denominator: printed as written
    assert pycode(safe_form(sp.exp(-xr ** 2) * b, [xr])) == "b*numpy.exp(-x**2)"
    # a denominator that can vanish (1 - e^x) is not a logistic: left alone
    assert "expit" not in pycode(safe_form(1 / (1 - sp.exp(xr)), [xr]))


def test_mills_ratio_is_finite_in_the_left_tail():
    xr = sp.Symbol("x", real=True)
    expr = sp.diff(sp.log(Phi(xr)), xr)            # phi(x) / Phi(x) ~ -x for x -> -inf
    ns = {"numpy": np}
    import scipy
    ns["scipy"] = scipy
    import scipy.special  # noqa: F401
    f = eval("lambda x: " + pycode(safe_form(expr, [xr])), ns)
    with np.errstate(all="raise", under="ignore"):
        got = f(XS)
    with mpmath.workdps(60):      # phi / Phi, with mpmath's ncdf (erfc in the left tail)
        want = np.array([float(mpmath.npdf(v) / mpmath.ncdf(v)) for v in XS])
    big = np.abs(want) >= TINY
    np.testing.assert_allclose(got[big], want[big], rtol=1e-12)
    assert np.all(np.abs(got[~big]) < 2 * TINY)


def test_piecewise_exp_branch_is_clamped_into_its_bounds():
    """numpy.select evaluates every branch everywhere: exp(x) in the branch x < 0 must not
    overflow at x = 1000 where the branch is not selected, and is unchanged where it is."""
    gain = sp.Piecewise((sp.exp(x), x < 0), (1 + x, True))
    model = _model("safe_piecewise_exp", gain)
    module = compile_module(model)
    specs = _specs(model)
    for name in ("gain_E", "gain_slope_E"):
        _check(model, module, name, specs[name])
    assert "numpy.exp(numpy.minimum(0, x))" in module.__source__
