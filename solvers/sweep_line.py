"""Natural-parameter continuation of the stationary state along one parameter (solvers.sweep): the
secant predictor, warm starts, and pseudo-arclength round a fold (solvers.arclength).  This module
never imports SymPy."""
from __future__ import annotations

import numpy as np

from .arclength import around_fold
from .sweep_point import evaluate_point

__all__ = ["continue_line"]


def _predict(done: list, value: float) -> list:
    """Starts to try at ``value``, in order: the secant predictor from the last two solved points
    of the line, the last solved point (or the line's given start), and a cold start (None)."""
    ok = [(p, L) for p, L in done if p is not None]
    starts = []
    if len(ok) >= 2:
        (p0, L0), (p1, L1) = ok[-2], ok[-1]
        if p1 != p0:
            starts.append(L1 + (value - p1) * (L1 - L0) / (p1 - p0))
    if ok:
        starts.append(ok[-1][1])
    elif done:
        starts.append(done[0][1])
    return starts + [None]


def continue_line(task) -> list:
    """One continuation task: (spec, fixed params, axis name, values, index prefix, start Lambda or
    None).  Returns the points in order (module docstring: predictor, then the last state, then a
    cold start; pseudo-arclength round a fold, solvers.arclength)."""
    spec, fixed, name, values, prefix, start = task
    points = []
    done = [] if start is None else [(None, np.asarray(start, float))]
    for k, v in enumerate(values):
        params = {**fixed, name: float(v)}
        pt = None
        for s in _predict(done, float(v)):
            pt = evaluate_point(spec, params, s, index=(*prefix, k))
            if pt["status"] != "no-convergence":
                break
        if pt["status"] == "no-convergence" and sum(p is not None for p, _ in done) >= 2:
            fold = around_fold(spec, fixed, name, [(p, L) for p, L in done if p is not None], float(v))
            if fold is not None:
                pt.setdefault("_folds", []).append(fold)
        points.append(pt)
        if pt["_Lambda"] is not None:
            done.append((float(v), pt["_Lambda"]))
    return points


