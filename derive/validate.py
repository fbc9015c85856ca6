"""Validation and normalisation of a Model, run before any derivation.

Every error names the model, the population (or kernel pair) and the offending expression.
Normalisation replaces all symbols by real symbols of the same name, turns drift into an m-vector
and diffusion into an m x q matrix (both SymPy matrices), and sympifies everything else.
"""
from __future__ import annotations

import keyword
import math

import sympy as sp

from .coordinates import Point, Space, t
from .errors import ModelError


def is_identifier(name) -> bool:
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)


def finite_number(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _err(model, where, what):
    raise ModelError(f"model {model.name!r}, {where}: {what}")


def _sympify(model, where, value):
    try:
        return sp.sympify(value)
    except (sp.SympifyError, TypeError) as exc:
        _err(model, where, f"cannot read {value!r} as a SymPy expression ({exc})")


def validate_and_normalise(model) -> None:
    """Check ``model`` and normalise it in place.  Raises ModelError on the first problem."""
    if not is_identifier(model.name):
        raise ModelError(f"model name {model.name!r} is not a valid Python identifier "
                         "(it becomes the file name generated/NAME.py)")
    if not isinstance(model.space, Space):
        _err(model, "space", f"{model.space!r} is not Point(), Ring(theta, phi) or Torus2(...)")
    if model.noise not in ("ito", "stratonovich"):
        _err(model, "noise", f"{model.noise!r} is neither 'ito' nor 'stratonovich'")

    state = list(model.state) if isinstance(model.state, (list, tuple)) else [model.state]
    if not state or not all(isinstance(s, sp.Symbol) for s in state):
        _err(model, "state", f"{model.state!r} must be a non-empty list of SymPy symbols")
    if len({s.name for s in state}) != len(state):
        _err(model, "state", f"state symbols {state} repeat a name")
    if not (isinstance(model.input_component, int) and 0 <= model.input_component < len(state)):
        _err(model, "input_component", f"{model.input_component!r} is not an index into the state "
                                       f"{[s.name for s in state]}")

    # parameters: names, finiteness
    params = {}
    for k, v in dict(model.parameters).items():
        if not isinstance(k, sp.Symbol):
            _err(model, "parameters", f"key {k!r} is not a SymPy symbol")
        if not is_identifier(k.name):
            _err(model, f"parameter {k.name!r}", "name is not a valid Python identifier")
        if not finite_number(v):
            _err(model, f"parameter {k.name}", f"value {v!r} is not a finite real number")
        params[k] = float(v)

    space = model.space
    reserved = {s.name for s in state} | {s.name for s in space.theta + space.phi} | {"t"}
    for k in params:
        if k.name in reserved:
            _err(model, f"parameter {k.name}", "name clashes with a state, position or time symbol")
    # names the generated code uses for its own arguments and helpers
    pop_names = [getattr(p, "name", "") for p in model.populations]
    generated_names = {"numpy", "scipy", "lam", "mean", "var", "params"}
    generated_names |= {f"D_{p}" for p in pop_names}
    generated_names |= {f"m_{s.name}" for s in state}
    generated_names |= {f"C_{a.name}_{b.name}" for a in state for b in state}
    for s in list(params) + list(state) + list(space.theta + space.phi):
        if s.name.startswith("_") or s.name in generated_names:
            _err(model, f"symbol {s.name!r}", "this name is reserved for the generated code "
                 f"(names starting with '_' and {sorted(generated_names)})")

    # one real symbol per name
    real = {}
    for s in list(state) + list(params):
        real[s.name] = sp.Symbol(s.name, real=True)
    for s in space.theta + space.phi:
        real[s.name] = s
    real["t"] = t
    model.state = [real[s.name] for s in state]
    model.parameters = {real[k.name]: v for k, v in params.items()}

    def realise(expr):
        return expr.xreplace({s: real[s.name] for s in expr.free_symbols
                              if isinstance(s, sp.Symbol) and s.name in real})

    m = len(state)
    xs = set(model.state)
    th, ph = set(space.theta), set(space.phi)
    pars = set(model.parameters)

    def check_symbols(expr, where, what, allowed):
        extra = {s for s in expr.free_symbols if s not in allowed}
        if extra:
            names = ", ".join(sorted(s.name for s in extra))
            hint = ("; the space is Point(), so nothing may depend on a position" if isinstance(space, Point)
                    else "")
            _err(model, where, f"{what} {expr} uses undeclared symbol(s) {names} "
                               f"(declare them in parameters=){hint}")

    def position_check(expr, where, what):
        if isinstance(space, Point) and expr.free_symbols & (th | ph):
            _err(model, where, f"{what} {expr} depends on position but the space is Point()")

    # populations
    if not model.populations:
        _err(model, "populations", "the model has no population")
    seen = set()
    for pop in model.populations:
        if not is_identifier(pop.name):
            _err(model, f"population {pop.name!r}", "name is not a valid Python identifier")
        if pop.name in seen:
            _err(model, f"population {pop.name}", "name used twice")
        seen.add(pop.name)
        where = f"population {pop.name}"
        local = xs | th | pars | {t}

        drift = pop.drift
        if isinstance(drift, sp.MatrixBase):
            drift = list(drift)
        if not isinstance(drift, (list, tuple)):
            drift = [drift]
        if len(drift) != m:
            _err(model, where, f"drift {pop.drift} has {len(drift)} component(s), the state has {m}")
        drift = sp.Matrix([realise(_sympify(model, where, d)) for d in drift])
        for d in drift:
            check_symbols(d, where, "drift", local)

        diff = pop.diffusion
        if isinstance(diff, sp.MatrixBase):
            diff = diff.tolist()
        if isinstance(diff, (list, tuple)):
            rows = list(diff)
            if all(isinstance(r, (list, tuple)) for r in rows):
                if len(rows) != m or len({len(r) for r in rows}) != 1 or len(rows[0]) == 0:
                    _err(model, where, f"diffusion {pop.diffusion} is not an m x q matrix with m = {m}")
                sigma = sp.Matrix([[realise(_sympify(model, where, e)) for e in r] for r in rows])
            else:
                if len(rows) != m:
                    _err(model, where, f"diffusion {pop.diffusion} has {len(rows)} diagonal entries, "
                                       f"the state has {m}")
                sigma = sp.diag(*[realise(_sympify(model, where, e)) for e in rows])
        else:
            s = realise(_sympify(model, where, diff))
            sigma = s * sp.eye(m)
        for e in sigma:
            if e.has(t):  # before check_symbols, which would call t an undeclared symbol
                _err(model, where, f"diffusion {e} depends on time")
            check_symbols(e, where, "diffusion", local - {t})
            if e.has(sp.I) or any(isinstance(a, sp.Number) and a.is_real is False for a in e.atoms()):
                _err(model, where, f"diffusion {e} is not real")

        if pop.gain is None:
            _err(model, where, "gain is missing")
        gain = realise(_sympify(model, where, pop.gain))
        if gain.has(t):
            _err(model, where, f"gain {gain} depends on time; it must depend on the state, position "
                               "and parameters only")
        check_symbols(gain, where, "gain", local - {t})
        if not gain.free_symbols & xs:
            _err(model, where, f"gain {gain} does not depend on the state {[s.name for s in model.state]}")

        drive = realise(_sympify(model, where, pop.drive))
        check_symbols(drive, where, "drive", th | pars | {t} | xs)
        if drive.free_symbols & xs:
            _err(model, where, f"drive {drive} depends on the state; it must depend on position, "
                               "time and parameters only")
        inp = realise(_sympify(model, where, pop.input))
        check_symbols(inp, where, "input", th | pars | {t} | xs)
        if inp.free_symbols & xs:
            _err(model, where, f"input {inp} depends on the state; it must depend on position, "
                               "time and parameters only")
        frac = realise(_sympify(model, where, pop.fraction))
        check_symbols(frac, where, "fraction", pars)
        fval = frac.subs(model.parameters)
        if not (fval.is_number and finite_number(fval) and float(fval) > 0):
            _err(model, where, f"fraction {frac} must be a positive finite number")
        for what, e in (("drift", drift), ("gain", gain), ("drive", drive), ("input", inp)):
            position_check(e if not isinstance(e, sp.MatrixBase) else sp.Add(*e), where, what)
        position_check(sp.Add(*sigma), where, "diffusion")
        if pop.initial is not None:
            if len(pop.initial) != 2 or not all(finite_number(v) for v in pop.initial) or \
                    float(pop.initial[1]) < 0:
                _err(model, where, f"initial {pop.initial!r} must be (mean, sd) with finite numbers, sd >= 0")
            pop.initial = (float(pop.initial[0]), float(pop.initial[1]))
        pop.drift, pop.diffusion, pop.gain = drift, sigma, gain
        pop.drive, pop.input, pop.fraction = drive, inp, frac

    # kernel
    names = [p.name for p in model.populations]
    kernel = {}
    for key, w in dict(model.kernel).items():
        if not (isinstance(key, tuple) and len(key) == 2):
            _err(model, f"kernel key {key!r}", "must be a pair (receiving, sending) of population names")
        a, b = key
        for nm in (a, b):
            if nm not in names:
                _err(model, f"kernel pair ({a}, {b})", f"names unknown population {nm!r}; "
                                                       f"populations are {names}")
        where = f"kernel pair ({a}, {b})"
        w = realise(_sympify(model, where, w))
        if w.free_symbols & xs:
            _err(model, where, f"kernel {w} depends on the state")
        if isinstance(space, Point) and w.free_symbols - pars:
            names = ", ".join(sorted(s.name for s in w.free_symbols - pars))
            _err(model, where, f"kernel {w} depends on {names}: on a Point() space the kernel cannot "
                               "depend on position (and every other symbol must be a parameter)")
        check_symbols(w, where, "kernel", th | ph | pars)
        if w != 0:
            kernel[(a, b)] = w
    model.kernel = kernel
