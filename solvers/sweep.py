"""Phase diagrams: the stationary state, its spectra and its verdict over a grid of parameter values,
with the boundaries between verdicts located (solvers.boundaries) and, on request, checked against
particles (solvers.sweep_particles).  Tasks run serially or on Dask (solvers.ensemble).

At every point (parameter values p) of a 1-D or 2-D grid:

  * feasibility (solvers.feasibility): h in Range(W), and the activities balance demands inside the
    gains' ranges; ``margin`` = min over the demanded activities of the distance to the nearer end
    of the range over its width (> 0 feasible; None when balance fixes no activity);
  * the stationary state: balanced limit (n None: W gbar + h = 0 with lambda in Range(W),
    solvers.stationary.solve_balanced) or the finite-n state (lambda_n = sqrt(n) (W gbar + h),
    solve_finite_n); per population lambda, gbar (its spatial mean, min and max), mean, variance
    (spatial means);
  * the fast spectrum per mode: the eigenvalues mu of W D on Range(W) (rates sqrt(n) Re mu,
    angular frequencies sqrt(n) Im mu); at finite n also those of diag(<f'>) + sqrt(n) W D, which
    decide stability there; the slow spectrum per mode (solvers.spectrum: the field on the
    manifold; linear models with additive noise, balanced limit only);
  * the verdict (of the fast and slow spectra; feasibility shows as 'no-balance' in the balanced
    limit, and at finite n, where the state exists either way, as the margin's sign): 'no-balance' (infeasible), 'no-convergence', 'unstable-oscillatory' / 'unstable-real'
    (a fast eigenvalue with Re > 0: complex / real leading one), 'slow-unstable', 'marginal',
    'ringing' (stable, complex fast eigenvalues: damped oscillations on the way onto the manifold)
    or 'stable'; the tolerance on Re is 1e-9 max(1, max |eig|) as in solvers.spectrum.

Continuation.  1-D: the points are solved in order along the axis, each Newton solve started from
the secant predictor Lambda_k + (p_{k+1} - p_k) (Lambda_k - Lambda_{k-1}) / (p_k - p_{k-1}) of the
last two solved points (then from Lambda_k, then from a cold start); where that fails or jumps to
another branch, pseudo-arclength continuation (solvers.sweep_line, solvers.arclength) follows the
branch through its folds, each reported as a saddle-node boundary with the eigenvalue there, and the
states it meets at grid values on the other branches are kept (SweepResult.branch_points).  A 1-D sweep is therefore one sequential task
(each point needs the one before it); only its boundary refinements and particle checks run in
parallel.  2-D (axes p, q; row j = all p at q_j): the first row (q = q_0, all p) is continued
along p (the spine, one task); then every point (p_i, q_j) of the next rows is warm-started from
its neighbour in the previous row, (p_i, q_(j-1)) (with the secant predictor through
(p_i, q_(j-2)) and (p_i, q_(j-1)) once two rows are solved): each column p_i is a continuation along
q from its spine point, and the columns are independent tasks.  A task is a pure function of its
inputs, so the table is the same bit for bit serially, on a LocalCluster and on a remote cluster.

This module never imports SymPy.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

import numpy as np

from .boundaries import critical_size_task, locate_boundaries
from .ensemble import SERIAL, ModelRef, run_tasks
from .output import Record, _clean
from .sweep_line import continue_line
from .sweep_particles import check_particles as _check_particles
from .sweep_point import VERDICTS, SweepSpec, _all, evaluate_point, leading, load_model, max_re  # noqa: F401

__all__ = ["SweepSpec", "SweepResult", "sweep", "parse_range", "evaluate_point", "VERDICTS"]


def parse_range(text: str) -> tuple[str, np.ndarray]:
    """'NAME=START:STOP:COUNT' -> (NAME, linspace(START, STOP, COUNT)); COUNT >= 1 (1: START only)."""
    name, sep, rng = str(text).partition("=")
    parts = rng.split(":")
    if not sep or not name.strip() or len(parts) != 3:
        raise ValueError(f"--param expects NAME=START:STOP:COUNT, got {text!r}")
    try:
        a, b = float(parts[0]), float(parts[1])
        count = int(parts[2])
    except ValueError:
        raise ValueError(f"--param {name.strip()}: START:STOP:COUNT must be two numbers and an integer, "
                         f"got {rng!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"--param {name.strip()}: START and STOP must be finite, got {rng!r}")
    if count < 1 or (count > 1 and a == b):
        raise ValueError(f"--param {name.strip()}: need COUNT >= 1 and START != STOP, got {rng!r}")
    return name.strip(), np.linspace(a, b, count)


# ---- the result ---------------------------------------------------------------------------------

def _pairs(w):
    return [[float(np.real(v)), float(np.imag(v))] for v in np.asarray(w, complex)]


def _eigtext(w) -> str:
    return " ".join(f"{v.real:.10g}{v.imag:+.10g}j" for v in np.asarray(w, complex))


@dataclass
class SweepResult(Record):
    """A phase diagram.  axes: [(name, values)] (one or two); points: the grid points in row-major
    order (the last axis fastest), each a dict (solvers.sweep.evaluate_point), on the branch the
    continuation followed there; branch_points: 1-D only, the states on the other branches found
    round folds (solvers.sweep_line), each with its grid index, 'branch' (the number of folds passed
    along the continuation path) and 'path' (its position along that path); boundaries: refined boundary points (solvers.boundaries); particle_checks: particle
    ensembles on both sides of the boundaries (solvers.sweep_particles); fixed: the other parameters;
    n, npos: as asked; scheduler: where the tasks ran; timings."""

    model: str
    populations: tuple
    axes: list
    n: float | None
    npos: int | None
    fixed: dict
    points: list
    boundaries: list = field(default_factory=list)
    branch_points: list = field(default_factory=list)
    particle_checks: list = field(default_factory=list)
    scheduler: str = SERIAL
    timings: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple:
        return tuple(len(v) for _, v in self.axes)

    def point(self, *index) -> dict:
        for p in self.points:
            if tuple(p["index"]) == tuple(index):
                return p
        raise KeyError(f"no point {index}")

    def verdicts(self) -> np.ndarray:
        """The verdicts as an array of the grid's shape (axes in order)."""
        out = np.empty(self.shape, dtype=object)
        for p in self.points:
            out[tuple(p["index"])] = p["verdict"]
        return out

    def values(self, quantity: str, population: str | None = None) -> np.ndarray:
        """A quantity on the grid (NaN where unsolved): 'margin', 'max_re' (the deciding fast
        eigenvalues), 'freq' (|Im| of the leading one), or a population's 'lambda', 'gbar',
        'gbar_min', 'gbar_max', 'mean', 'variance'."""
        out = np.full(self.shape, np.nan)
        for p in self.points:
            if quantity == "margin":
                v = p["margin"]
            elif quantity in ("max_re", "freq"):
                w = _all(p["fast"])
                lead = leading(w)
                v = None if lead is None else (lead.real if quantity == "max_re" else abs(lead.imag))
            else:
                v = p["populations"].get(population, {}).get(quantity)
            out[tuple(p["index"])] = np.nan if v is None else v
        return out

    def table(self) -> list[dict]:
        """The tidy table: one row per point and population (parameters, branch, status, verdict,
        margin, population, lambda, gbar (mean, min, max), mean, variance, the leading deciding fast
        eigenvalue and its mode, all fast eigenvalues, the leading slow eigenvalue); an unsolved point
        has one row with population ''.  The grid's points first, then the branch points (1-D:
        other branches round folds) in the order of the continuation path."""
        rows = []
        names = [nm for nm, _ in self.axes]
        for p in list(self.points) + sorted(self.branch_points, key=lambda q: q.get("path", 0)):
            base = {nm: p["params"][nm] for nm in names}
            base.update(branch=p.get("branch", 0), status=p["status"], verdict=p["verdict"], margin=p["margin"])
            if "critical_n" in p:
                base["critical_n"] = p["critical_n"]
            w = _all(p["fast"])
            lead = leading(w)
            lead_mode = ""
            if lead is not None:
                lead_mode = max(p["fast"], key=lambda m: max_re(p["fast"][m]))
            ws = _all(p["slow"])
            sl = leading(ws)
            eig = {"fast_leading_re": None if lead is None else lead.real,
                   "fast_leading_im": None if lead is None else lead.imag, "fast_leading_mode": lead_mode,
                   "fast_eigenvalues": _eigtext(w), "slow_leading_re": None if sl is None else sl.real,
                   "slow_leading_im": None if sl is None else sl.imag}
            if not p["populations"]:
                rows.append({**base, "population": "", **dict.fromkeys(
                    ("lambda", "gbar", "gbar_min", "gbar_max", "mean", "variance")), **eig})
            for a, q in p["populations"].items():
                rows.append({**base, "population": a, **q, **eig})
        return rows

    def to_csv(self, path=None) -> str | None:
        """The tidy table as CSV (text, or written atomically to ``path``); empty cells where unsolved."""
        rows = self.table()
        buf = io.StringIO()
        fields = list(rows[0].keys()) if rows else []
        wr = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        wr.writeheader()
        for r in rows:
            wr.writerow({k: ("" if v is None else (repr(float(v)) if isinstance(v, (float, np.floating)) else v))
                         for k, v in r.items()})
        if path is None:
            return buf.getvalue()
        from .atomic import atomic_open
        with atomic_open(path, "w") as fh:
            fh.write(buf.getvalue())
        return None

    def to_record(self) -> dict:
        """JSON: model, axes, n, npos, fixed parameters, verdict counts, the table's points (with the
        fast (deciding), limit fast and slow eigenvalues per mode as [re, im] pairs), boundaries,
        particle checks, timings."""
        def record(p):
            q = {k: v for k, v in p.items() if not k.startswith("_") and k not in ("fast", "limit_fast", "slow")}
            q["fast"] = {m: _pairs(w) for m, w in p["fast"].items()}
            if self.n is not None:
                q["limit_fast"] = {m: _pairs(w) for m, w in p["limit_fast"].items()}
            q["slow"] = None if p["slow"] is None else {m: _pairs(w) for m, w in p["slow"].items()}
            return q
        pts = [record(p) for p in self.points]
        counts = {}
        for p in self.points:
            counts[p["verdict"]] = counts.get(p["verdict"], 0) + 1
        rec = {"model": self.model, "kind": "sweep", "populations": list(self.populations),
               "axes": [{"name": nm, "values": v} for nm, v in self.axes], "n": self.n, "npos": self.npos,
               "fixed_parameters": self.fixed, "verdict_counts": counts, "points": pts,
               "branch_points": [record(p) for p in self.branch_points],
               "boundaries": [{k: v for k, v in b.items() if not k.startswith("_")} for b in self.boundaries],
               "particle_checks": self.particle_checks, "scheduler": self.scheduler, "timings": self.timings}
        return _clean(_finite(rec))


def _finite(obj):
    """JSON has no inf/nan: None instead (the eigenvalue maxima of empty sets)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)) and not math.isfinite(float(obj)):
        return None
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    return obj


# ---- the driver ---------------------------------------------------------------------------------

def sweep(model, axes, *, n: float | None = None, npos: int | None = None, params: dict | None = None,
          scheduler=SERIAL, refine: bool = True, check_particles: int = 0, particle_settings: dict | None = None,
          slow: bool = True, progress=None, xtol: float = 1e-10, critical_n: bool = False) -> SweepResult:
    """The phase diagram of ``model`` over ``axes`` (module docstring).

    model: a shipped name, a model file or a CompiledModel loaded from one; params: fixed parameter
    overrides.  axes: one or two (name, values) pairs or 'NAME=START:STOP:COUNT' strings.  n: network
    size (None: the balanced limit).  scheduler: 'serial', 'local', an address or a distributed.Client
    (solvers.ensemble).  refine: locate the boundaries between neighbouring points of different kinds
    to ``xtol`` in the parameter (solvers.boundaries).  check_particles K: particle ensembles at K
    points on each side of the boundaries (solvers.sweep_particles; settings in particle_settings).
    progress: None or a callable(label, done, total, seconds) (solvers.ensemble).  critical_n: at every
    point whose balanced limit is fast-unstable (W D has Re mu > 0), the network size n* above which
    the finite-n state is unstable (solvers.boundaries.critical_size; point['critical_n'])."""
    import time
    t0 = time.perf_counter()
    axes = [parse_range(a) if isinstance(a, str) else (str(a[0]), np.asarray(a[1], float)) for a in axes]
    if not 1 <= len(axes) <= 2:
        raise ValueError(f"a sweep has one or two axes, got {len(axes)}")
    if len(axes) == 2 and axes[0][0] == axes[1][0]:
        raise ValueError(f"the two axes are the same parameter {axes[0][0]!r}")
    ref = ModelRef.of(model, params)
    if n is not None and not (math.isfinite(float(n)) and float(n) > 0):
        raise ValueError(f"n must be a positive number, got {n}")
    if check_particles and n is None:
        raise ValueError("particle checks need a network size: give n (--n N) with check_particles")
    if check_particles and int(check_particles) < 0:
        raise ValueError(f"check_particles must be >= 0, got {check_particles}")
    spec = SweepSpec(ref, None if n is None else float(n), npos, slow)
    cm = load_model(spec, {})                                   # unknown parameters: refused here
    for nm, vals in axes:
        if nm not in cm.module.PARAMETERS:
            raise ValueError(f"model {cm.name!r}: unknown parameter {nm!r}; parameters are "
                             f"{sorted(cm.module.PARAMETERS)}")
        if not np.all(np.isfinite(vals)) or len(vals) < 1:
            raise ValueError(f"parameter {nm}: the values must be finite and at least one")
    if cm.m != 1:
        raise ValueError(f"model {cm.name!r}: the sweep solves stationary densities, which need m = 1 "
                         f"(this model has m = {cm.m})")
    fixed = {k: v for k, v in cm.params.items() if k not in {nm for nm, _ in axes}}
    timings = {}
    if len(axes) == 1:
        (name, vals), = axes
        lines = run_tasks(continue_line, [(spec, {}, name, vals, (), None, True)], scheduler=scheduler,
                          progress=progress, label="sweep")
        points = lines[0]
    else:
        (pn, pv), (qn, qv) = axes
        spine = run_tasks(continue_line, [(spec, {qn: float(qv[0])}, pn, pv, ("spine",), None)],
                          scheduler=scheduler, progress=None, label="spine")[0]
        tasks = [(spec, {pn: float(pv[i])}, qn, qv[1:], ("column", i),
                  None if spine[i]["_Lambda"] is None else (float(qv[0]), spine[i]["_Lambda"]))
                 for i in range(len(pv))]
        columns = run_tasks(continue_line, tasks, scheduler=scheduler, progress=progress, label="sweep columns")
        points = []
        for i in range(len(pv)):
            for j in range(len(qv)):
                pt = spine[i] if j == 0 else columns[i][j - 1]
                pt["index"] = (i, j)
                points.append(pt)
    if len(axes) == 1:
        for k, pt in enumerate(points):
            pt["index"] = (k,)
    timings["grid"] = time.perf_counter() - t0
    res = SweepResult(cm.name, cm.populations, axes, spec.n, npos, fixed, points,
                      scheduler=scheduler if isinstance(scheduler, str) else "client")
    folds = [f for p in points for f in p.pop("_folds", [])]
    res.branch_points = [q for p in points for q in p.pop("_branch_points", [])]
    if refine:
        t1 = time.perf_counter()
        res.boundaries = folds + locate_boundaries(spec, res, scheduler=scheduler, progress=progress, xtol=xtol)
        timings["boundaries"] = time.perf_counter() - t1
    else:
        res.boundaries = folds
    if critical_n:
        t1 = time.perf_counter()
        todo = [p for p in points if p["status"] == "ok" and max_re(_all(p["limit_fast"])) > 0]
        found = run_tasks(critical_size_task, [(SweepSpec(ref, None, npos, False), p["params"]) for p in todo],
                          scheduler=scheduler, progress=progress, label="critical sizes")
        for p in points:
            p["critical_n"] = None
        for p, c in zip(todo, found):
            p["critical_n"] = c.get("n")
        timings["critical_n"] = time.perf_counter() - t1
    if check_particles:
        t1 = time.perf_counter()
        res.particle_checks = _check_particles(spec, res, int(check_particles), scheduler=scheduler, progress=progress,
                                     **(particle_settings or {}))
        timings["particles"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    res.timings = timings
    return res
