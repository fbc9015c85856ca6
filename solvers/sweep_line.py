"""Natural-parameter continuation of the stationary state along one parameter (solvers.sweep): the
secant predictor, warm starts, and pseudo-arclength round folds (solvers.arclength).

Natural continuation solves F(Lambda, p_k) = 0 at the grid values p_k in order, each from the secant
predictor of the last two solved points.  It cannot pass a fold of the branch: beyond a fold the
branch it followed does not exist, and Newton either fails or converges to another branch (a jump).
A step is therefore distrusted when Newton did not converge from the predictor, or converged to a
state further from it than half the last step (|Lambda - Lambda_pred| > JUMP_RATIO |Lambda_pred -
Lambda_k| + JUMP_FLOOR (1 + |Lambda_k|): a smooth branch bends by O(dp^2), a jump by O(1)).  Then, with ``follow_folds`` (1-D
sweeps), the branch is followed by pseudo-arclength from the last two solved points
(solvers.arclength.follow) through every fold until it passes p_(k+1) going forward; each fold is
refined and reported (a saddle-node boundary with the deciding eigenvalue there), and wherever the
followed branch crosses a grid value the state there is solved from the branch (Newton at fixed p
from the linear interpolation between the two branch points around it) and recorded as a point of
that branch: ``branch`` counts the folds passed (0 before the first).  The point at p_(k+1) is the
one on the followed branch.  Without ``follow_folds`` (the columns of a 2-D sweep) a fold is located
(solvers.arclength.around_fold) only where Newton fails, and the grid point keeps whatever state
natural continuation found.  This module never imports SymPy."""
from __future__ import annotations

import numpy as np

from .arclength import around_fold, branch_equation, follow
from .sweep_point import evaluate_point

JUMP_RATIO = 0.5
JUMP_FLOOR = 1e-6           # ... and by more than 1e-6 (1 + |Lambda_k|): below that it is the solver's tolerance

__all__ = ["continue_line", "JUMP_RATIO"]


def _predict(done: list, value: float) -> list:
    """Starts to try at ``value``, in order: the secant predictor from the last two solved points
    of the line, the last solved point (or the line's given start), and a cold start (None); each
    as (Lambda, how: {'method': 'secant' | 'previous' | 'cold', 'from': the axis values used})."""
    ok = [(p, np.ravel(L)) for p, L in done if p is not None]
    starts = []
    if len(ok) >= 2:
        (p0, L0), (p1, L1) = ok[-2], ok[-1]
        if p1 != p0:
            starts.append((L1 + (value - p1) * (L1 - L0) / (p1 - p0), {"method": "secant", "from": [p0, p1]}))
    if ok:
        starts.append((ok[-1][1], {"method": "previous", "from": [ok[-1][0]]}))
    elif done:
        starts.append((np.ravel(done[0][1]), {"method": "previous", "from": []}))
    return starts + [(None, {"method": "cold", "from": []})]


def _natural(spec, params, name, done, value, index):
    """The point at ``value`` by natural continuation, and whether the step is distrusted."""
    starts = _predict(done, value)
    pt = None
    for s, how in starts:
        pt = evaluate_point(spec, params, s, index=index)
        pt["start"] = {"parameter": name, **how}
        if pt["status"] != "no-convergence":
            break
    suspect = pt["status"] == "no-convergence"
    if pt["status"] == "ok" and starts[0][1]["method"] == "secant":
        pred, last = starts[0][0], np.ravel(done[-1][1])
        miss = np.linalg.norm(np.ravel(pt["_Lambda"]) - pred)
        floor = JUMP_FLOOR * (1.0 + np.linalg.norm(last))          # rounding: a flat branch is no jump
        suspect = pt["start"]["method"] != "secant" or miss > JUMP_RATIO * np.linalg.norm(pred - last) + floor
    return pt, suspect


def _fold_record(spec, fixed, name, fold, before, after) -> dict:
    """The boundary record of a fold found by pseudo-arclength, with the state there (the deciding
    eigenvalue nearest 0: real at a saddle-node) when the stationary solve accepts it."""
    from .sweep_point import _all
    out = {"type": "fold", "kind": "saddle-node", "mode": None, "parameter": name, "value": fold["p"],
           "params": {**fixed, name: fold["p"]}, "method": "pseudo-arclength, secant on dp/ds",
           "dp_ds": fold["dp_ds"], "n": spec.n, "branches": [before, after], "_y": np.asarray(fold["y"], float)}
    st = evaluate_point(spec, {**fixed, name: fold["p"]}, np.asarray(fold["y"][:-1], float))
    if st["status"] == "ok":
        w = _all(st["fast"])
        mu = complex(w[np.argmin(np.abs(w))]) if w.size else None
        out["populations"] = st["populations"]
        out["eigenvalue"] = None if mu is None else [mu.real, mu.imag]
        out["residual_lambda"] = float(np.max(np.abs(st["_Lambda"].ravel() - fold["y"][:-1])))
    return out


def _along_branch(spec, fixed, name, values, done, target_k, prefix, branch, order):
    """Pseudo-arclength from the last two solved points of ``done`` to values[target_k] through any
    folds.  Returns (extra points, folds, the point at target_k or None, branch number there,
    done list on that branch, order)."""
    F, J = branch_equation(spec, fixed, name)
    (p0, L0), (p1, L1) = done[-2], done[-1]
    lo, hi = float(np.min(values)), float(np.max(values))
    span = hi - lo
    res = follow(F, J, np.append(np.ravel(L0), p0), np.append(np.ravel(L1), p1), p_target=float(values[target_k]),
                 p_lo=lo - 1e-9 * span, p_hi=hi + 1e-9 * span)
    extras, folds, target = [], [], None
    path = res["path"]
    b = branch
    vt = float(values[target_k])
    forward = np.sign(vt - p0)
    last_on_branch = [(p0, np.ravel(L0)), (p1, np.ravel(L1))]
    for (ya, ka), (yb, kb) in zip(path[:-1], path[1:]):
        pa, pb = float(ya[-1]), float(yb[-1])
        if pb != pa:
            sgn = np.sign(pb - pa)
            ks = [k for k, v in enumerate(values) if (v - pa) * sgn > 0 and (v - pb) * sgn <= 0
                  and (sgn != forward or (v - vt) * forward <= 0)]      # beyond the target: natural steps
            ks.sort(key=lambda k: (values[k] - pa) * sgn)
            for k in ks:
                v = float(values[k])
                w = (v - pa) / (pb - pa)
                start = (1 - w) * ya[:-1] + w * yb[:-1]
                pt = evaluate_point(spec, {**fixed, name: v}, start, index=(*prefix, k))
                pt["start"] = {"parameter": name, "method": "pseudo-arclength", "from": [pa, pb]}
                pt["branch"], pt["path"] = b, order
                order += 1
                if k == target_k and res["reached"] and yb is path[-1][0]:
                    target = pt
                else:
                    extras.append(pt)
                if pt["_Lambda"] is not None:
                    last_on_branch.append((v, pt["_Lambda"]))
        if kb == "fold":
            folds.append(_fold_record(spec, fixed, name, {"y": yb, "p": pb, "dp_ds": res["folds"][len(folds)]["dp_ds"]},
                                      b, b + 1))
            b += 1
            last_on_branch = [(pb, yb[:-1])]
        elif kb == "point":
            last_on_branch.append((pb, yb[:-1]))
    gap = 0.25 * float(np.min(np.abs(np.diff(values)))) if len(values) > 1 else 0.0
    before = [(p, L) for p, L in last_on_branch if (vt - p) * forward > gap]     # a secant needs distinct points
    return extras, folds, target, b, before[-1:], order, res


def continue_line(task) -> list:
    """One continuation task: (spec, fixed params, axis name, values, index prefix, start[, follow
    folds]), start None, a Lambda, or (value, Lambda): a point solved before the line (at that value
    of the axis, which then also serves the secant predictor).  Returns the points in order (module
    docstring); a point may carry '_folds' (fold boundary records found on the way to it) and, with
    follow_folds, '_branch_points' (states on other branches at grid values, found round folds)."""
    spec, fixed, name, values, prefix, start = task[:6]
    follow_folds = bool(task[6]) if len(task) > 6 else False
    points = []
    if start is None:
        done = []
    elif isinstance(start, tuple):
        done = [(float(start[0]), np.asarray(start[1], float))]
    else:
        done = [(None, np.asarray(start, float))]
    branch, order = 0, 0
    for k, v in enumerate(values):
        params = {**fixed, name: float(v)}
        pt, suspect = _natural(spec, params, name, done, float(v), (*prefix, k))
        solved = [(p, L) for p, L in done if p is not None]
        if suspect and len(solved) >= 2 and follow_folds:
            extras, folds, target, new_branch, done_b, order, res = _along_branch(
                spec, fixed, name, values, solved, k, prefix, branch, order)
            if folds or target is not None:
                if target is not None and target["status"] == "ok":
                    pt = target
                    branch = new_branch
                    done = done_b
                else:                                   # the followed branch left the interval: a jump
                    branch = new_branch + 1
                    done = []
                pt["_folds"] = folds
                pt["_branch_points"] = extras
            elif not res["reached"]:            # unconfirmed: natural continuation's state is kept
                pt["start"]["arclength"] = f"not confirmed: {res['lost']}"
        elif suspect and len(solved) >= 2 and pt["status"] == "no-convergence":
            fold = around_fold(spec, fixed, name, solved, float(v))
            if fold is not None:
                pt.setdefault("_folds", []).append(fold)
        pt["branch"], pt["path"] = branch, order
        order += 1
        points.append(pt)
        if pt["_Lambda"] is not None:
            done.append((float(v), pt["_Lambda"]))
    return points
