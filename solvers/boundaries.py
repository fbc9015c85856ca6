"""Boundaries of a phase diagram, located to a tolerance in the parameter (solvers.sweep).

Between two neighbouring grid points a and b (along either axis, the other parameters fixed) the
sweep finds a boundary where

  * loss of balance: one point is solvable and the other is not (InfeasibleBalance), or (at
    finite n, where the stationary state exists on both sides) the demanded-activity margin of the
    balanced limit changes sign between them (once per pair of grid values, whatever the branch).  Refined on
    the demanded-activity margin m(p) (solvers.feasibility.demanded_margin: the distance of the
    activities balance fixes from the ends of the gains' ranges, over the range's width; it is a
    continuous function of p whose zero is where a demanded activity reaches an end of the range,
    e.g. gbar = -W^{-1} h reaching 0 or 1 on a point) by Brent's method; where it does not change
    sign but the profile margin does (solvers.feasibility.profile_margins: on a ring the demanded
    mean stays inside the range while the demanded tuning becomes unreachable, the activity having
    to reach 0 or 1 at some positions only), by Brent's method on that; otherwise (balance fixes no
    moments) by bisection on "the stationary solve succeeds", which stops where Newton does (near a
    local loss of balance lambda grows without bound and Newton fails a little before the boundary:
    ring_ei, 9e-7 early in delta, why the profile margin comes first);
  * fast instability: the largest real part of the deciding fast eigenvalues of a mode (W D on
    Range(W) in the balanced limit; diag(<f'>) + sqrt(n) W D at finite n) changes sign.  Refined by
    Brent's method on that largest real part (continuous in p), the stationary state re-solved at
    every trial p from the last one.  At the root the crossing eigenvalue is reported: complex
    (|Im| > 1e-6 max(1, |mu|)) = Hopf, with angular frequency |Im mu| (sqrt(n) |Im mu| at size n),
    real = saddle-node (a real eigenvalue through 0);
  * slow instability: the same with the slow eigenvalues (solvers.spectrum, linear models).

Each boundary is located to ``xtol`` (default 1e-10) in the parameter (Brent: |p - p*| <= xtol +
1e-14 |p*|; bisection: the final bracket is narrower than xtol).  ``critical_size`` locates, at
fixed parameters, the network size n at which a mode of the finite-n fast matrix crosses (Brent's
method in log n).  Each boundary is one task (solvers.ensemble).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from .ensemble import SERIAL, run_tasks
from .sweep_point import _all, _modes, fast_of, leading, load_model, margin_of, max_re, slow_of, solve_state

RTOL = 1e-14
HOPF_RTOL = 1e-6

__all__ = ["locate_boundaries", "refine_boundary", "crossings", "critical_size"]


def crossings(a: dict, b: dict) -> list:
    """The boundaries between two neighbouring points: [(kind, modes)] with kind 'balance', 'slow' or
    'fast'.  Fast: when the largest deciding real part over all modes changes sign, modes = all of
    them (the stability boundary: the largest real part over all eigenvalues is continuous, however a
    degenerate eigenspace, e.g. the cos and sin modes of a homogeneous state, is shared out among the
    labels at different p); otherwise the modes present at both points whose own largest real part
    changes sign (a crossing inside the unstable region).  refine_boundary locates the first crossing
    of the union and then each mode that does not cross there."""
    out = []
    oka, okb = a["status"] == "ok", b["status"] == "ok"
    if oka != okb:
        if "no-balance" in (a["status"], b["status"]):
            out.append(("balance", None))
        return out
    if not oka:
        return out
    ma, mb = a.get("margin"), b.get("margin")
    if ma is not None and mb is not None and (ma > 0) != (mb > 0):
        out.append(("balance", None))           # finite n: states on both sides, the limit's balance lost
    both = sorted(set(a["fast"]) & set(b["fast"]))
    changed = [m for m in both if (max_re(a["fast"][m]) > 0) != (max_re(b["fast"][m]) > 0)]
    if (max_re(_all(a["fast"])) > 0) != (max_re(_all(b["fast"])) > 0):
        changed = sorted(set(a["fast"]) | set(b["fast"]))      # the leading eigenvalue, whatever its label
    if changed:
        out.append(("fast", tuple(changed)))
    if a["slow"] is not None and b["slow"] is not None:
        sa, sb = _all(a["slow"]), _all(b["slow"])
        if sa.size and sb.size and (max_re(sa) > 0) != (max_re(sb) > 0):
            out.append(("slow", None))
    return out


def _edges(res):
    """Neighbouring pairs (point a, point b, axis): 2-D, the grid's neighbours; 1-D, neighbouring
    grid values on the same branch (the grid's points and the branch points round folds, in the
    order of the continuation path): two states on different branches are joined by folds, which
    the continuation located, not by a boundary between them."""
    shape = res.shape
    out = []
    if len(shape) == 1:
        pts = sorted(list(res.points) + list(getattr(res, "branch_points", [])), key=lambda p: p.get("path", 0))
        last = {}
        for p in pts:
            b, k = p.get("branch", 0), p["index"][0]
            q = last.get(b)
            if q is not None and abs(q["index"][0] - k) == 1:
                a_, b_ = (q, p) if q["index"][0] < k else (p, q)
                out.append((a_, b_, 0))
            last[b] = p
        return out
    grid = {tuple(p["index"]): p for p in res.points}
    for p in res.points:
        idx = tuple(p["index"])
        for ax in range(len(shape)):
            if idx[ax] + 1 < shape[ax]:
                nb = list(idx)
                nb[ax] += 1
                q = grid[tuple(nb)]
                if p.get("branch", 0) == q.get("branch", 0):
                    out.append((p, q, ax))
    return out


def locate_boundaries(spec, res, *, scheduler=SERIAL, progress=None, xtol: float = 1e-10) -> list:
    """Every boundary between neighbouring points of the sweep result ``res``, refined (one task each)."""
    tasks, seen = [], set()
    for a, b, ax in _edges(res):
        ia, ib = tuple(a["index"]), tuple(b["index"])
        for kind, mode in crossings(a, b):
            if kind == "balance":           # a property of the parameters, not of the branch: once
                if (ia, ib) in seen:
                    continue
                seen.add((ia, ib))
            name = res.axes[ax][0]
            fixed = {k: v for k, v in a["params"].items() if k != name}
            tasks.append((spec, fixed, name, a["params"][name], b["params"][name], kind, mode,
                          a["_Lambda"], b["_Lambda"], xtol, {"between": [list(ia), list(ib)],
                                                             "verdicts": [a["verdict"], b["verdict"]],
                                                             "branch": a.get("branch", 0)}))
    found = run_tasks(refine_boundary, tasks, scheduler=scheduler, progress=progress, label="boundaries")
    return [b for group in found for b in group]


class _Solver:
    """Stationary solves along one parameter with warm starts from the last solve."""

    def __init__(self, spec, fixed, name, start):
        self.spec, self.fixed, self.name, self.L = spec, fixed, name, start

    def __call__(self, v):
        from .balance_errors import NoConvergence
        params = {**self.fixed, self.name: float(v)}
        try:
            cm, st = solve_state(self.spec, params, self.L)
        except NoConvergence:
            cm, st = solve_state(self.spec, params, None)
        self.L = st.Lambda
        return cm, st


def refine_boundary(task) -> list:
    """The boundary between p = a and p = b (module docstring): a list of dicts (more than one when
    several modes cross in the interval at different p), each with type, mode, kind ('hopf',
    'saddle-node', 'loss-of-balance'), parameter, value, params (all swept parameters at the
    boundary), bracket, method, tolerance and, for spectral boundaries, the crossing eigenvalue
    [re, im] and angular frequency (sqrt(n) |Im mu| at size n: given at finite n, else per sqrt(n));
    for loss of balance the population whose demanded activity reaches its range, and the value."""
    from .balance_errors import InfeasibleBalance, StationaryError
    spec, fixed, name, a, b, kind, mode, La, Lb, xtol, meta = task
    out = {"type": kind, "mode": ",".join(mode) if mode else None, "modes": list(mode or ()), "parameter": name, "bracket": [a, b], "n": spec.n, **meta}
    try:
        if kind in ("fast", "slow"):
            solver = _Solver(spec, fixed, name, La if La is not None else Lb)

            def f(v):
                cm, st = solver(v)
                w = _union(fast_of(spec, st), mode) if kind == "fast" else _all(slow_of(spec, cm))
                if not w.size:
                    raise ValueError(f"no eigenvalue of mode {','.join(mode or ())} at {name} = {v:.10g} "
                                     f"(its degenerate eigenspace was shared out to another mode)")
                return max_re(w)
            root = brentq(f, a, b, xtol=xtol, rtol=RTOL)
            cm, st = solver(root)
            fast = fast_of(spec, st)
            w = _union(fast, mode) if kind == "fast" else _all(slow_of(spec, cm))
            mu = leading(w)
            hopf = abs(mu.imag) > HOPF_RTOL * max(1.0, abs(mu))
            out.update(kind="hopf" if hopf else "saddle-node", value=float(root), method="brentq",
                       tolerance=xtol, eigenvalue=[mu.real, mu.imag])
            if spec.n is None:
                out["angular_frequency_per_sqrt_n"] = abs(mu.imag)
            else:
                out["angular_frequency"] = abs(mu.imag)
                lim = leading(_union(_modes(st.modes), mode))
                out["limit_eigenvalue"] = None if lim is None else [lim.real, lim.imag]
            if kind == "fast":
                tol = 1e-6 * max(1.0, abs(mu))
                out["modes_at_root"] = [m for m in mode if np.any(np.abs(np.asarray(fast.get(m, ())) - mu) <= tol)
                                        or np.any(np.abs(np.asarray(fast.get(m, ())) - mu.conjugate()) <= tol)]
                out["mode"] = ",".join(out["modes_at_root"])
        else:
            def margin(v):
                try:
                    return margin_of(spec, load_model(spec, {**fixed, name: float(v)}))
                except InfeasibleBalance:
                    return None
            ma, mb = margin(a), margin(b)
            pa = pb = None
            if not (ma is not None and mb is not None and (ma > 0) != (mb > 0)):
                pa, pb = _profile(spec, fixed, name, a), _profile(spec, fixed, name, b)
            if ma is not None and mb is not None and (ma > 0) != (mb > 0):
                root = brentq(lambda v: margin(v), a, b, xtol=xtol, rtol=RTOL)
                out.update(value=float(root), method="brentq on the demanded-activity margin", tolerance=xtol)
                out.update(_which_activity(spec, {**fixed, name: float(root)}))
            elif pa is not None and pb is not None and (min(pa.values()) > 0) != (min(pb.values()) > 0):
                root = brentq(lambda v: min(_profile(spec, fixed, name, v).values()), a, b, xtol=xtol, rtol=RTOL)
                at = _profile(spec, fixed, name, root)
                pop = min(at, key=at.get)
                out.update(value=float(root), method="brentq on the profile margin (linear programme)",
                           tolerance=xtol, population=pop, profile_margins=at,
                           where="some positions only: the demanded moments reach the boundary of those "
                                 "of profiles inside the gain's range (solvers.feasibility.profile_margins)")
            else:
                solver = _Solver(spec, fixed, name, La if La is not None else Lb)

                def solvable(v):
                    try:
                        solver(v)
                        return True
                    except StationaryError:
                        return False
                lo, hi = (a, b) if solvable(a) else (b, a)
                while abs(hi - lo) > xtol:
                    mid = 0.5 * (lo + hi)
                    if solvable(mid):
                        lo = mid
                    else:
                        hi = mid
                out.update(value=float(0.5 * (lo + hi)), method="bisection on solvability", tolerance=xtol,
                           last_solvable=float(lo))
            out["kind"] = "loss-of-balance"
    except (StationaryError, ValueError) as exc:
        out.update(kind="unresolved", value=None, method="failed", error=f"{type(exc).__name__}: {exc}")
    out["params"] = {**fixed, name: out.get("value")}
    found = [out]
    # modes of the union that changed sign too but do not cross at the union's root (an
    # inhomogeneous state splits the cos and sin modes): each located on its own
    rest = [] if kind != "fast" or out.get("value") is None else [
        m for m in mode if m not in out.get("modes_at_root", ())]
    for m in rest:
        one = refine_boundary((spec, fixed, name, a, b, kind, (m,), La, Lb, xtol, meta))
        found.extend(r for r in one if r.get("value") is not None and r["value"] != out["value"])
    return found


def _union(modes: dict, labels) -> np.ndarray:
    """The eigenvalues of the modes ``labels`` together."""
    parts = [np.asarray(modes[m], complex) for m in labels if m in modes]
    return np.concatenate(parts) if parts else np.zeros(0, complex)


def _profile(spec, fixed, name, v):
    """solvers.feasibility.profile_margins at ``name`` = v on the solver's lattice (None: balance fixes
    no moments, or the drive is outside Range(W))."""
    from .balance_errors import InfeasibleBalance
    from .feasibility import profile_margins
    from .sweep_point import lattice_of
    try:
        return profile_margins(lattice_of(spec, load_model(spec, {**fixed, name: float(v)})))
    except InfeasibleBalance:
        return None


def _which_activity(spec, params) -> dict:
    """At a loss-of-balance root: the population and demanded activity that reached the range's end."""
    from .feasibility import demanded_checks
    from .sweep_point import lattice_of
    best = None
    for pop, dem, lo, hi, where, _ in demanded_checks(lattice_of(spec, load_model(spec, params))):
        width = hi - lo if math.isfinite(hi - lo) else 1.0
        for end in (lo, hi):
            d = abs(dem - end) / width
            if best is None or d < best[0]:
                best = (d, pop, float(dem), float(end), where)
    if best is None:
        return {}
    return {"population": best[1], "demanded_activity": best[2], "range_end": best[3], "where": best[4]}


def critical_size_task(task) -> dict:
    """critical_size(spec, params) as a task (spec, params); {'n': None, 'error': ...} when it fails."""
    from .balance_errors import StationaryError
    spec, params = task
    try:
        return critical_size(spec, params)
    except (StationaryError, ValueError) as exc:
        return {"n": None, "error": f"{type(exc).__name__}: {exc}"}


def critical_size(model_spec, params: dict, modes=None, *, n_lo: float = 1.0,
                  n_hi: float = 1e12, rtol: float = 1e-10) -> dict:
    """The network size n* at which the finite-n fast matrix diag(<f'>) + sqrt(n) W D (at the
    finite-n stationary state) has an eigenvalue of the modes ``modes`` (a tuple of labels, taken
    together as in ``crossings``; None: any) crossing Re = 0, by Brent's
    method on its largest real part in log n over [n_lo, n_hi] (relative tolerance rtol in n).  For
    J = <f'> < 0 and an unstable limit eigenvalue mu (Re mu > 0) this is near n = (J / Re mu)^2.
    Returns {'n': n*, 'eigenvalue': [re, im] at n*, 'angular_frequency': |Im|} or {'n': None, ...}
    when the sign does not change over the interval."""
    from dataclasses import replace

    def f(logn):
        spec = replace(model_spec, n=float(math.exp(logn)))
        _, st = solve_state(spec, params)
        w = fast_of(spec, st)
        return max_re(_union(w, modes) if modes else _all(w)), w
    lo, hi = math.log(n_lo), math.log(n_hi)
    flo, fhi = f(lo)[0], f(hi)[0]
    if (flo > 0) == (fhi > 0):
        return {"n": None, "reason": f"no crossing for n in [{n_lo:g}, {n_hi:g}] (max Re {flo:.3g}, {fhi:.3g})"}
    root = brentq(lambda x: f(x)[0], lo, hi, xtol=rtol, rtol=RTOL)
    _, w = f(root)
    mu = leading(_union(w, modes) if modes else _all(w))
    return {"n": float(math.exp(root)), "eigenvalue": [mu.real, mu.imag], "angular_frequency": abs(mu.imag),
            "unstable_above": fhi > 0}
