"""Pseudo-arclength continuation round a fold of a branch F(x, p) = 0 (solvers.sweep).

Natural-parameter continuation (solve F(x, p_k) = 0 for x from the previous point) fails where the
branch turns back in p (a fold: F_x singular, the branch continues with dp/ds < 0).  Pseudo-arclength
(Keller) parametrises the branch by its arclength s instead: from a solved point y = (x, p) with unit
tangent t (the null vector of [F_x F_p], oriented as the last step), the next point solves

    F(y) = 0,    t . (y - y - ds t) = 0                          (Newton on (r + 1) unknowns),

whose Jacobian [[F_x, F_p], [t^T]] stays regular at a simple fold.  The new tangent solves
[[F_x, F_p], [t_old^T]] z = (0, 1), normalised.  A fold lies between two points whose tangents'
p-components have opposite signs; it is refined by the secant method on that component as a
function of the arclength from the earlier point (each trial point re-corrected), to |dp/ds| <= 1e-12
or 60 iterations, and reported with p at the fold.

``trace`` works on any F and stops at the first fold; ``follow`` goes on through any number of
folds until the branch passes a target value of p (a 1-D sweep uses it to continue round folds and
record every branch over the swept interval); ``around_fold`` applies ``trace`` to the stationary balance equation of a model
(balanced limit: Pi R(Lambda) + (I - Pi) Lambda = 0, Pi the projector on Range(W); finite n:
Lambda / sqrt(n) - R(Lambda) = 0; R = B mu(gbar) + H as in solvers.stationary).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["trace", "follow", "around_fold", "branch_equation"]


def _correct(F, J, y_pred, t, tol, max_iter=30):
    """Newton on [F(y); t.(y - y_pred)] = 0 from y_pred; (y, converged)."""
    y = y_pred.copy()
    for _ in range(max_iter):
        r = np.append(F(y), t @ (y - y_pred))
        if np.max(np.abs(r)) <= tol:
            return y, True
        A = np.vstack([J(y), t[None, :]])
        try:
            dy = np.linalg.solve(A, -r)
        except np.linalg.LinAlgError:
            return y, False
        if not np.all(np.isfinite(dy)):
            return y, False
        y = y + dy
    r = np.append(F(y), t @ (y - y_pred))
    return y, bool(np.max(np.abs(r)) <= tol)


def _tangent(J, y, t_old):
    A = np.vstack([J(y), t_old[None, :]])
    rhs = np.zeros(A.shape[0])
    rhs[-1] = 1.0
    z = np.linalg.solve(A, rhs)
    return z / np.linalg.norm(z)


def trace(F, J, y0, y1, *, p_stop: float, max_steps: int = 200, tol: float = 1e-11,
          ds_min: float = 1e-10) -> dict:
    """Follow the branch of F(y) = 0 (y = (x, p), F: R^(r+1) -> R^r, J its r x (r+1) Jacobian)
    from the solved points y0, y1 (in that order) until p passes p_stop or the branch folds.
    Returns {'points': [y ...], 'fold': None or {'y': y at the fold, 'p': p there, 'dp_ds': ...},
    'reached': bool (p passed p_stop)}."""
    y0, y1 = np.asarray(y0, float), np.asarray(y1, float)
    t = (y1 - y0) / np.linalg.norm(y1 - y0)
    ds = float(np.linalg.norm(y1 - y0))
    t = _tangent(J, y1, t)
    y = y1
    direction = math.copysign(1.0, p_stop - y1[-1])
    pts = [y1]
    for _ in range(max_steps):
        y_new, ok = _correct(F, J, y + ds * t, t, tol)
        if not ok:
            ds /= 2
            if ds < ds_min:
                return {"points": pts, "fold": None, "reached": False}
            continue
        t_new = _tangent(J, y_new, t)
        if t[-1] * t_new[-1] < 0:                          # dp/ds changed sign: a fold in between
            fold = _refine_fold(F, J, y, t, ds)
            pts.append(y_new)
            return {"points": pts, "fold": fold, "reached": False}
        pts.append(y_new)
        y, t = y_new, t_new
        if direction * (y[-1] - p_stop) >= 0:
            return {"points": pts, "fold": None, "reached": True}
        ds = min(ds * 1.5, 10 * float(np.linalg.norm(y1 - y0)))
    return {"points": pts, "fold": None, "reached": False}


def follow(F, J, y0, y1, *, p_target: float, p_lo: float, p_hi: float, max_steps: int = 400,
           tol: float = 1e-11, ds_min: float = 1e-10, ds_max: float | None = None) -> dict:
    """Follow the branch of F(y) = 0 from the solved points y0, y1 (in that order) through any
    number of folds, until it passes ``p_target`` moving in the direction from p(y0) to p_target,
    or leaves [p_lo, p_hi].  Each fold (dp/ds changing sign between two steps) is refined as in
    ``trace`` and the branch followed on beyond it.  Returns {'path': [(y, kind) ...] with kind
    'point' or 'fold' in the order met (y1 first), 'folds': [fold dicts as in trace], 'reached':
    bool (p_target passed), 'lost': reason or None}."""
    y0, y1 = np.asarray(y0, float), np.asarray(y1, float)
    step0 = float(np.linalg.norm(y1 - y0))
    ds = step0
    ds_max = 10 * step0 if ds_max is None else ds_max
    t = _tangent(J, y1, (y1 - y0) / step0)
    forward = math.copysign(1.0, p_target - y0[-1])
    y = y1
    path, folds = [(y1, "point")], []
    for _ in range(max_steps):
        y_new, ok = _correct(F, J, y + ds * t, t, tol)
        if not ok:
            ds /= 2
            if ds < ds_min:
                return {"path": path, "folds": folds, "reached": False, "lost": "corrector failed (step below ds_min)"}
            continue
        t_new = _tangent(J, y_new, t)
        if t[-1] * t_new[-1] < 0:                          # dp/ds changed sign: a fold in between
            fold = _refine_fold(F, J, y, t, ds)
            folds.append(fold)
            path.append((fold["y"], "fold"))
        path.append((y_new, "point"))
        y, t = y_new, t_new
        if forward * t[-1] > 0 and forward * (y[-1] - p_target) >= 0:
            return {"path": path, "folds": folds, "reached": True, "lost": None}
        if not (p_lo <= y[-1] <= p_hi):
            return {"path": path, "folds": folds, "reached": False, "lost": "the branch left the swept interval"}
        ds = min(ds * 1.5, ds_max)
    return {"path": path, "folds": folds, "reached": False, "lost": f"{max_steps} steps"}


def _refine_fold(F, J, y, t, ds):
    """Secant on s -> dp/ds(s) (the tangent's p-component at the point corrected from y + s t)."""
    def g(s):
        ys, ok = _correct(F, J, y + s * t, t, 1e-12)
        if not ok:
            raise ValueError("corrector failed at the fold")
        return _tangent(J, ys, t)[-1], ys
    s0, s1 = 0.0, ds
    g0, _ = g(s0)
    g1, ys = g(s1)
    for _ in range(60):
        if abs(g1) <= 1e-12 or g1 == g0:
            break
        s2 = s1 - g1 * (s1 - s0) / (g1 - g0)
        if not (min(0.0, ds) - ds <= s2 <= 2 * ds):
            s2 = 0.5 * (s0 + s1)
        s0, g0 = s1, g1
        s1 = s2
        g1, ys = g(s1)
    return {"y": ys, "p": float(ys[-1]), "dp_ds": float(g1)}


def branch_equation(spec, fixed, name):
    """(F, J) of the stationary equation in y = (Lambda, p) for the model of spec (module docstring)."""
    from .stationary import _evaluate, _System
    from .sweep_point import load_model, npos_of
    cache = {}

    def system(p):
        sy = cache.get(p)
        if sy is None:
            cm = load_model(spec, {**fixed, name: float(p)})
            npos = npos_of(spec, cm)
            if len(cache) > 8:
                cache.clear()
            sy = cache[p] = _System(cm, npos, spec.t, None)
        return sy

    def parts(y):
        sy = system(float(y[-1]))
        cpl = sy.cpl
        Lam = y[:-1]
        if spec.n is None:
            _, _, R, dR = _evaluate(sy, Lam)
            Pi = cpl.Q @ cpl.Q.T
            I = np.eye(Lam.size)
            return Pi @ R + (I - Pi) @ Lam, Pi @ dR + (I - Pi)
        s = math.sqrt(spec.n)
        _, _, R, dR = _evaluate(sy, Lam, s * cpl.h_res)
        return Lam / s - R, np.eye(Lam.size) / s - dR

    def F(y):
        return parts(y)[0]

    def J(y):
        f0, Jx = parts(y)
        h = 1e-7 * (1.0 + abs(y[-1]))
        yp = y.copy()
        yp[-1] += h
        Fp = (parts(yp)[0] - f0) / h
        return np.hstack([Jx, Fp[:, None]])
    return F, J


def around_fold(spec, fixed: dict, name: str, done: list, target: float) -> dict | None:
    """Natural continuation along ``name`` failed at ``target`` after the solved points ``done``
    [(p, Lambda) ...]: follow the branch by pseudo-arclength from the last two; a boundary record
    (type 'fold', kind 'saddle-node', value = p at the fold) when it folds, else None."""
    (p0, L0), (p1, L1) = done[-2], done[-1]
    F, J = branch_equation(spec, fixed, name)
    y0 = np.append(np.ravel(L0), p0)
    y1 = np.append(np.ravel(L1), p1)
    try:
        res = trace(F, J, y0, y1, p_stop=target)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return None
    if res["fold"] is None:
        return None
    fold = res["fold"]
    return {"type": "fold", "kind": "saddle-node", "mode": None, "parameter": name, "value": fold["p"],
            "params": {**fixed, name: fold["p"]}, "method": "pseudo-arclength, secant on dp/ds",
            "dp_ds": fold["dp_ds"], "n": spec.n, "bracket": [p1, target]}
