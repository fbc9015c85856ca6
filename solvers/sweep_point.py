"""One point of a phase diagram (solvers.sweep): the model at given parameter values, its stationary
state, spectra per mode and verdict, and the helpers on eigenvalues per mode the boundaries use.
The maths is in solvers.sweep's module docstring.  This module never imports SymPy."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .ensemble import ModelRef

EIG_RTOL = 1e-9             # |Re| below this (relative to max(1, max |eig|)) is marginal (solvers.spectrum)
VERDICTS = ("stable", "ringing", "marginal", "slow-unstable", "unstable-real", "unstable-oscillatory",
            "no-balance", "no-convergence")

__all__ = ["SweepSpec", "evaluate_point", "solve_state", "load_model", "fast_of", "slow_of", "margin_of", "lattice_of", "npos_of",
           "verdict_of", "max_re", "leading", "VERDICTS"]


@dataclass(frozen=True)
class SweepSpec:
    """What every point computes: the model (a ModelRef: loadable in a worker), the network size n
    (None: the balanced limit), lattice positions per angle (None: the solvers' default), whether
    to compute the slow spectrum, the time t of a time-dependent drive."""

    model: ModelRef
    n: float | None = None
    npos: int | None = None
    slow: bool = True
    t: float = 0.0


_CACHE: dict = {}


def load_model(spec: SweepSpec, params: dict):
    """The CompiledModel of spec.model with ``params`` (its generated module loaded once per process)."""
    from .compiled import CompiledModel
    base = _CACHE.get(spec.model.ref)
    if base is None:
        base = _CACHE[spec.model.ref] = ModelRef(spec.model.ref).load().module
    return CompiledModel(base, {**dict(spec.model.params), **params})


def _label(key: str) -> str:
    return key[4:] if key.startswith("psi=") else key


def _modes(d) -> dict:
    return {_label(k): np.asarray(v, complex) for k, v in (d or {}).items()}


def _all(modes: dict | None) -> np.ndarray:
    if not modes:
        return np.zeros(0, complex)
    return np.concatenate([np.asarray(v, complex) for v in modes.values()])


def max_re(w) -> float:
    w = np.asarray(w, complex)
    return float(np.max(w.real)) if w.size else -math.inf


def leading(w) -> complex | None:
    w = np.asarray(w, complex)
    if not w.size:
        return None
    k = int(np.lexsort((-np.abs(w.imag), w.real))[-1])       # largest Re; the +Im member of a pair
    return complex(w[k].real, abs(w[k].imag))


def verdict_of(fast: dict, slow: dict | None) -> str:
    """The verdict of a solved point from its deciding fast eigenvalues and slow eigenvalues per mode."""
    wf, ws = _all(fast), _all(slow)
    scale = max(1.0, float(np.abs(wf).max()) if wf.size else 0.0, float(np.abs(ws).max()) if ws.size else 0.0)
    tol = EIG_RTOL * scale
    if wf.size and max_re(wf) > tol:
        lead = leading(wf)
        return "unstable-oscillatory" if abs(lead.imag) > tol else "unstable-real"
    if ws.size and max_re(ws) > tol:
        return "slow-unstable"
    if (wf.size and np.any(np.abs(wf.real) <= tol)) or (ws.size and np.any(np.abs(ws.real) <= tol)):
        return "marginal"
    return "ringing" if wf.size and np.any(np.abs(wf.imag) > tol) else "stable"


def solve_state(spec: SweepSpec, params: dict, start=None):
    """(CompiledModel, StationaryResult) at ``params``: balanced limit or finite n, from ``start``
    (Lambda) when given; raises the solvers' StationaryError subclasses."""
    from .stationary import solve_balanced, solve_finite_n
    cm = load_model(spec, params)
    if spec.n is None:
        return cm, solve_balanced(cm, npos=spec.npos, t=spec.t, start=start, check_stability=False)
    return cm, solve_finite_n(cm, spec.n, npos=spec.npos, t=spec.t, start=start, check_stability=False)


def fast_of(spec: SweepSpec, st) -> dict:
    """The deciding fast eigenvalues per mode: W D at the limit, diag(<f'>) + sqrt(n) W D at finite n."""
    return _modes(st.modes if spec.n is None else st.finite_n_modes)


def slow_of(spec: SweepSpec, cm) -> dict | None:
    """The slow eigenvalues per mode (solvers.spectrum, field of a linear/additive model, limit only)."""
    if not spec.slow or spec.n is not None:
        return None
    if not all(dict(getattr(cm.module, "LINEAR_ADDITIVE", {})).get(a, False) for a in cm.populations):
        return None
    from .spectrum import spectrum
    sp = spectrum(cm, npos=spec.npos, t=spec.t)
    return {r.label: np.asarray(r.slow, complex) for r in sp.modes if r.slow is not None}


def npos_of(spec: SweepSpec, cm) -> int:
    """Lattice positions per angle of the stationary solver for this sweep (1 on a point)."""
    from .lattice_coupling import DEFAULT_NPOS
    return 1 if cm.pos_dim == 0 else (DEFAULT_NPOS[cm.space] if spec.npos is None else spec.npos)


def lattice_of(spec: SweepSpec, cm):
    """The LatticeCoupling of the stationary solver's lattice at the sweep's time."""
    from .lattice_coupling import LatticeCoupling
    return LatticeCoupling(cm, npos_of(spec, cm), spec.t)


def margin_of(spec: SweepSpec, cm) -> float | None:
    """solvers.feasibility.demanded_margin on the solver's lattice."""
    from .feasibility import demanded_margin
    return demanded_margin(lattice_of(spec, cm))


def evaluate_point(spec: SweepSpec, params: dict, start=None, *, index=None) -> dict:
    """Everything the sweep records at one point (module docstring), plus '_Lambda' (the solved
    coefficients, for warm starts; None when unsolved)."""
    from .balance_errors import InfeasibleBalance, StationaryError
    pt = {"index": index, "params": dict(params), "status": "ok", "reason": "", "verdict": None,
          "margin": None, "iterations": 0, "populations": {}, "fast": {}, "limit_fast": {}, "slow": None,
          "_Lambda": None}
    cm = load_model(spec, params)
    try:
        pt["margin"] = margin_of(spec, cm)
    except InfeasibleBalance:
        pass
    try:
        cm, st = solve_state(spec, params, start)
    except InfeasibleBalance as exc:
        pt.update(status="no-balance", reason=f"{type(exc).__name__}: {exc}", verdict="no-balance")
        return pt
    except StationaryError as exc:
        pt.update(status="no-convergence", reason=f"{type(exc).__name__}: {exc}", verdict="no-convergence")
        return pt
    pt["iterations"] = int(st.iterations)
    pt["_Lambda"] = np.asarray(st.Lambda, float).copy()
    for i, a in enumerate(cm.populations):
        pt["populations"][a] = {"lambda": float(np.mean(st.lam[i])), "gbar": float(np.mean(st.gbar[i])),
                                "gbar_min": float(np.min(st.gbar[i])), "gbar_max": float(np.max(st.gbar[i])),
                                "mean": float(np.mean(st.mean[i])), "variance": float(np.mean(st.variance[i]))}
    pt["fast"] = fast_of(spec, st)
    pt["limit_fast"] = _modes(st.modes)
    pt["slow"] = slow_of(spec, cm)
    pt["verdict"] = verdict_of(pt["fast"], pt["slow"])
    return pt


