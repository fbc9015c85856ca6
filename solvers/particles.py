"""Particle simulation of the balanced network of DESIGN.md §1.

Population a holds n_a = round(alpha_a n) neurons at positions theta_j (regular lattice by default:
theta_j = 2 pi j / n_a on the ring, a side x side lattice on the torus; i.i.d. uniform as an option).
Each neuron follows the Itô SDE

    dx_j = [ f_a(x_j, theta_j, t) + ( u_a(theta_j, t) + sqrt(n) r_a(theta_j, t) ) e ] dt + sigma_a(x_j, theta_j) dW_j,
    r_a(theta, t) = sum_b alpha_b mean_{k in b} w_ab(theta, theta_k) g_b(x_k) + h_a(theta, t)

(solvers.coupling computes the sum: low rank, FFT or blocked dense).

Time stepping (step dt, t_k = k dt).  Euler–Maruyama

    x^{k+1} = x^k + dt [f + (u + sqrt(n) r) e] + sigma dW,      dW ~ N(0, dt I_q),

or Milstein, adding  1/2 sum_{j,l} M[i][j][l] (dW_j dW_l - delta_jl dt)  with the generated tensor
M[i][j][l] = sum_p sigma_pj d_p sigma_il (commutative noise; only where the derivation provides it).

Stiffness and the linearly implicit coupling.  The sqrt(n) coupling relaxes the imbalance at rates
sqrt(n) * eig(W D) (DESIGN.md §2), so explicit steps need dt < 2 Re(-mu) / |mu|^2 for every fast
eigenvalue mu = sqrt(n) eig(W D) with Re mu < 0: dt must shrink like n^(-1/2).  With a separable
kernel the coupling is treated linearly implicitly instead (a Rosenbrock-W / linearly implicit Euler
step in the coupling only), and dt need not shrink with n:

  Let mu_{b,l} = mean_{i in b} chi_l(theta_i) g_b(x_i) (P L moments), c = B mu (B = constraint_matrix,
  alpha_b included), so that sqrt(n) r_a(theta_j) = sqrt(n) [psi(theta_j) . c_a + h_a(theta_j)].
  Evaluate the coupling at the end of the step, linearised: mu -> mu + dmu with
  g_b(x_i + dx_i) ~ g_b(x_i) + g'_b(x_i) dx_{i,e}, so

      dx_j  = dx_j^expl + dt sqrt(n) psi(theta_j) . (B dmu)_a e,                       (1)
      dmu_{b,l} = mean_{i in b} chi_l(theta_i) g'_b(x_i) dx_{i,e}.                      (2)

  dx^expl is the explicit Euler–Maruyama (or Milstein) increment with the coupling c.  Inserting (1)
  into (2):

      dmu = s + dt sqrt(n) S B dmu,    i.e.   (I - dt sqrt(n) S B) dmu = s,             (3)

      s_{b,l}       = mean_{i in b} chi_l(theta_i) g'_b(x_i) dx^expl_{i,e}               (P L)
      S[(b,l),(a,k)] = delta_ab M_b[l,k],  M_b[l,k] = mean_{i in b} chi_l psi_k g'_b(x_i)  (P L x P K)

  a (P L) x (P L) solve per step; s and M cost O(n (K + L)) (M: O(n r^2) with r distinct atoms).
  B S is the matrix of q -> W(D q) on span{psi_k e_a} with the neurons' own slopes (the fast
  matrix of DESIGN.md §2), so for a fast eigenvalue z = dt sqrt(n) eig(B S) the step multiplies the
  imbalance by 1/(1 - z): stable for Re z < 0 whatever dt sqrt(n).  With ``jacobian_every = k > 1``
  the slopes g' are refreshed every k steps only (a W-method: consistent for any approximate
  Jacobian; in the stiff limit the fast mode is multiplied by 1 - mu/mu~ per step, mu~ the rate of
  the lagged Jacobian, so it stays stable while the true fast rates are less than twice the lagged
  ones: safe when the slopes change little between refreshes, not through a sharp initial layer).

  The neurons feel the multiplier lambda = sqrt(n) [psi . (c + B dmu) + h] (the end-of-step
  prediction), and this is what is recorded as ``lam``; explicitly (implicit=False, or FFT / dense
  coupling) it is lambda_n = sqrt(n) r_a of the current empirical measure.  Implicitly the two
  differ: the linearisation (2) misses the Itô term 1/2 g'' sigma^2 dt of the expected change of
  the gains, so after a step the empirical imbalance W gbar + h is off by O(dt), and sqrt(n) r_a of
  the empirical measure (recorded as ``lam_state``) by O(dt sqrt(n)): on ei_linear at n = 10^4,
  dt = 0.01, time averages lam = (-0.783, -1.100), lam_state = (-0.873, -1.174), explicit runs at
  dt = 0.002 (-0.785, -1.100).  ``lam`` is the multiplier consistent with the mean states (for
  f = -x their time averages are equal) and agrees with explicit runs to O(dt).

  Explicit runs (implicit=False, or a non-separable kernel) are checked before they start: the
  fast eigenvalues at the initial state (exact eig(B S) for separable kernels, a coarse-lattice
  estimate otherwise) give the largest stable dt, and a larger dt is refused with that number.
  Slopes change during a run, so explicit runs repeat the check every STABILITY_CHECK_EVERY steps
  with the current slopes and stop with SimulationUnstable (a ValueError) when dt has become
  unstable: near the limit, explicit Euler does not always blow up, it can settle on a wrong,
  oscillating state (gains saturate), which must not be returned silently.

Numerical trouble.  The loop runs with floating-point warnings silenced and checks itself: after
every step the states and the coupling moments must be finite, else SimulationBlowUp (a
RuntimeError) names the time, the population and the likely cause.

Determinism.  One numpy Generator (PCG64, seeded by ``seed``) draws, in order, the uniform positions
(if asked), the initial states, then per step and per population the q x n_a normal increments, so
the same arguments give the same result bit for bit.  ``noise`` (a callable(step, pop, dt, out))
replaces the Brownian increments, e.g. to drive two runs with the same paths (strong convergence).

Records (every ``record_every``): per population and position bin (bins centred on the lattice
model.grid(nbins)), the mean of the state component e, its within-bin variance and the mean gain at
the start of the record interval, and lambda at the bin centres averaged over the steps of the
interval (the multiplier the neurons felt; it fluctuates from step to step in the stiff regime, and
a sample would alias with e.g. the Jacobian refreshes).  Exception: with the FFT / dense coupling,
when no neuron sits on the bin centres (uniform positions, or nbins not dividing the lattice), lambda
is the value at the start of the interval, by direct summation.  This module never imports SymPy.
"""
from __future__ import annotations

import math
import types
from dataclasses import dataclass, field

import numpy as np

from .compiled import CompiledModel
from .coupling import bin_index, field_at, make_coupling
from .output import state_record


#: Explicit runs re-check the stability limit with the current gain slopes every this many steps.
STABILITY_CHECK_EVERY = 20


class SimulationBlowUp(RuntimeError):
    """The particle states became non-finite (NaN or overflow) during a run."""


class SimulationUnstable(ValueError):
    """An explicit run's dt exceeds the stability limit of a fast coupling mode (found during the run,
    after the gain slopes changed; the check before the run raises a plain ValueError)."""


# ---------------------------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------------------------
@dataclass
class SimulationResult:
    """Output of simulate().  Arrays over records are indexed (record, population, bin).

    times (nt,); mean, variance, gbar, lam, lam_state (nt, P, nbins_total): mean and within-bin
    variance of component e and mean gain at the record times; lam the multiplier applied in the
    steps (sqrt(n) r_a at the bin centres, with the implicit end-of-step coupling when implicit),
    averaged over each record interval; lam_state the same from the empirical measure at the start of
    each step (equal to lam for explicit runs; for implicit runs it carries the O(dt sqrt(n))
    linearisation residual and should not be used as an estimate of lambda_n); bin_centres (nbins,) angles on the
    ring, (nbins^2, 2) on the torus, [0.0] without space; bin_positions: the same as a tuple of
    arrays (the ``pos`` of CompiledModel); final_states: pop -> (m, n_a); positions: pop -> tuple of
    arrays (n_a,); sizes: pop -> n_a.
    """

    model: CompiledModel
    n: int
    T: float
    dt: float
    seed: int
    scheme: str
    positions_kind: str
    coupling: str
    implicit: bool
    sizes: dict
    times: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    gbar: np.ndarray
    lam: np.ndarray
    lam_state: np.ndarray
    bin_centres: np.ndarray
    bin_positions: tuple
    final_states: dict
    positions: dict
    fast_eigenvalues: np.ndarray = field(default=None)

    def histogram(self, pop: str, bins=50, range=None, component: int | None = None):
        """Density-normalised histogram of component e (default) of the final states of ``pop``:
        returns (density, edges) as numpy.histogram(..., density=True)."""
        if pop not in self.final_states:
            raise KeyError(f"no population {pop!r}; populations are {list(self.final_states)}")
        e = self.model.e if component is None else component
        return np.histogram(self.final_states[pop][e], bins=bins, range=range, density=True)

    def time_average(self, t0: float | None = None, nbatch: int = 10) -> dict:
        """Time averages over the records with t >= t0 (default T/2) and batch-means standard errors:
        the window is cut into ``nbatch`` consecutive batches, se = sd(batch means) / sqrt(nbatch).

        Returns {'mean','gbar','lam','variance'} (P, nbins) and the same with '_se', plus
        'window': (t0, T) and 'samples' (records in the window)."""
        t0 = 0.5 * self.T if t0 is None else float(t0)
        if not (0.0 <= t0 < self.T):
            raise ValueError(f"averaging window start t0 = {t0} must lie in [0, T = {self.T})")
        sel = self.times >= t0 - 1e-12 * max(1.0, self.T)
        k = int(sel.sum())
        if nbatch < 2:
            raise ValueError(f"nbatch = {nbatch}: need at least 2 batches for a standard error")
        if k < nbatch:
            raise ValueError(f"only {k} records in the window [{t0}, {self.T}], fewer than nbatch = {nbatch}; "
                             f"record more often (record_every) or start the window earlier")
        out = {"window": (t0, self.T), "samples": k}
        for name in ("mean", "gbar", "lam", "variance", "lam_state"):
            series = getattr(self, name)[sel]
            batches = np.array([b.mean(axis=0) for b in np.array_split(series, nbatch)])
            out[name] = series.mean(axis=0)
            out[name + "_se"] = batches.std(axis=0, ddof=1) / math.sqrt(nbatch)
        return out

    def to_record(self, t0: float | None = None, nbatch: int = 10) -> dict:
        """JSON-able record (solvers.output.state_record, kind 'particles') of the time averages over
        [t0, T], with 'stderr' (per population, batch-means standard errors), 'window', 'n', 'seed',
        'dt' and the run settings."""
        av = self.time_average(t0, nbatch)
        per, se = {}, {}
        for ia, pop in enumerate(self.model.populations):
            per[pop] = {"lambda": av["lam"][ia], "gbar": av["gbar"][ia], "mean": av["mean"][ia],
                        "variance": av["variance"][ia]}
            se[pop] = {"lambda": av["lam_se"][ia], "gbar": av["gbar_se"][ia], "mean": av["mean_se"][ia],
                       "variance": av["variance_se"][ia]}
        return state_record(self.model, "particles", self.bin_positions, per,
                            stderr=se, window=list(av["window"]), n=self.n, seed=self.seed, dt=self.dt,
                            T=self.T, scheme=self.scheme, positions=self.positions_kind,
                            coupling=self.coupling, implicit=self.implicit, nbatch=nbatch,
                            sizes=self.sizes, samples=av["samples"])


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _state_or_time(cm, kind, pop) -> bool:
    """kind_pop (generated) depends on the state or on t: known from the generated USES."""
    return cm.state_dependent(kind, pop) or "t" in cm.uses(kind, pop)


def _compact(v, n: int):
    """A per-neuron array as a number when it is constant (saves memory and work), else (n,) array."""
    a = np.asarray(v, float)
    if a.ndim == 0:
        return float(a)
    a = np.broadcast_to(a, (n,))
    if a.strides == (0,) or np.all(a == a[0]):
        return float(a[0])
    return np.ascontiguousarray(a)


def _scalar_view(v):
    """A generated output that is a broadcast constant (all strides 0) as a float, else None."""
    if isinstance(v, (float, int)):
        return float(v)
    a = np.asarray(v)
    if a.ndim == 0 or all(s == 0 for s in a.strides):
        return float(a.flat[0])
    return None


def _resolve_model(model, params) -> CompiledModel:
    if isinstance(model, CompiledModel):
        if params:
            return CompiledModel(model.module, {**model.params, **params})
        return model
    if isinstance(model, (str, types.ModuleType)):
        return CompiledModel(model, params)
    if hasattr(model, "MODEL_NAME") and hasattr(model, "POPULATIONS"):
        return CompiledModel(model, params)
    raise TypeError(f"model must be a CompiledModel, a model name or a generated module, got {type(model)}")


def _make_positions(model, n_a: int, kind: str, rng):
    if model.pos_dim == 0:
        return ()
    if kind == "lattice":
        if model.pos_dim == 1:
            return (2 * np.pi * np.arange(n_a) / n_a,)
        side = math.isqrt(n_a)
        if side * side != n_a:
            raise ValueError(f"a lattice on the torus needs a square number of neurons per population, "
                             f"got n_a = {n_a}; choose n (and the fractions) so that alpha_a n is a square, "
                             f"or use positions='uniform'")
        return model.grid(side)
    return tuple(rng.uniform(0.0, 2 * np.pi, n_a) for _ in range(model.pos_dim))


def _initial_states(model, pop, m, n_a, pos, init, rng) -> np.ndarray:
    if init is None:
        spec = model.module.INITIAL.get(pop) if isinstance(model.module.INITIAL, dict) else None
        x = rng.standard_normal((m, n_a))
        if spec is not None:
            mean, sd = spec
            mean = np.broadcast_to(np.asarray(mean, float), (m,))[:, None]
            sd = np.broadcast_to(np.asarray(sd, float), (m,))[:, None]
            x = mean + sd * x
    elif callable(init):
        x = init(rng, pop, m, n_a, pos)
    elif isinstance(init, dict):
        if pop not in init:
            raise ValueError(f"init has no initial states for population {pop!r}")
        x = init[pop]
    else:
        raise TypeError("init must be None, a dict pop -> array (m, n_a) or a callable(rng, pop, m, n_a, positions)")
    x = np.array(x, dtype=float)
    if x.ndim == 1 and m == 1:
        x = x[None, :]
    if x.shape != (m, n_a):
        raise ValueError(f"initial states of population {pop!r} have shape {x.shape}, expected ({m}, {n_a})")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"initial states of population {pop!r} are not all finite")
    return np.ascontiguousarray(x)


def explicit_dt_limit(eigenvalues) -> tuple[float, complex | None]:
    """Largest dt with |1 + dt mu| <= 1 for every mu with Re mu < 0: min 2 Re(-mu) / |mu|^2,
    and the eigenvalue that sets it (inf, None if there is none)."""
    best, arg = math.inf, None
    for mu in np.atleast_1d(eigenvalues):
        if mu.real < 0:
            lim = 2.0 * (-mu.real) / (abs(mu) ** 2)
            if lim < best:
                best, arg = lim, complex(mu)
    return best, arg


# ---------------------------------------------------------------------------------------------
# the simulator
# ---------------------------------------------------------------------------------------------
def simulate(model, n: int, T: float, dt: float, *, seed: int = 0, scheme: str = "euler", init=None,
             positions: str = "lattice", record_every: float | None = None, nbins: int | None = None,
             params: dict | None = None, coupling: str = "auto", implicit: bool = True,
             noise=None, jacobian_every: int = 1) -> SimulationResult:
    """Integrate the network of DESIGN.md §1 on [0, T] with step dt (see the module docstring).

    model: CompiledModel, model name, or generated module (params: parameter overrides).
    n: size parameter (population a has round(alpha_a n) neurons; the coupling scale is sqrt(n)).
    T, dt: end time and step (T must be a whole number of steps).  seed: the Generator seed.
    scheme: 'euler' (Euler–Maruyama) or 'milstein' (needs MILSTEIN[pop] for every population).
    init: None (the model's INITIAL (mean, sd) Gaussian per population, else N(0, 1) per component),
          a dict pop -> array (m, n_a), or a callable(rng, pop, m, n_a, positions) -> array.
    positions: 'lattice' or 'uniform' (i.i.d.).  record_every: time between records (rounded to a
          whole number of steps; default: every step up to 200 steps, else every
          max(10, nsteps / 10000) steps).  Records are taken at the start of steps, t < T.
    nbins: position bins per angle (default min(n_a, 16) on the ring, min(side, 8) per angle on the
          torus, 1 without space).
    coupling: 'auto' | 'lowrank' | 'fft' | 'dense' (solvers.coupling).  implicit: treat the
          low-rank coupling linearly implicitly (ignored for FFT / dense, which run explicitly after
          the stability check).  jacobian_every: refresh the gain slopes of the implicit solve every
          k steps (1: every step, the exact linearly implicit Euler step).
    noise: optional callable(step, pop, dt, out) filling out (q, n_a) with the Brownian increments
          of that step (replaces the Generator's normals).
    """
    cm = _resolve_model(model, params)
    n = int(n)
    T, dt = float(T), float(dt)
    if n < 1:
        raise ValueError(f"n = {n} must be a positive integer")
    if not (math.isfinite(T) and T > 0 and math.isfinite(dt) and dt > 0):
        raise ValueError(f"T = {T} and dt = {dt} must be positive and finite")
    nsteps = int(round(T / dt))
    if nsteps < 1 or abs(nsteps * dt - T) > 1e-9 * max(T, 1.0):
        raise ValueError(f"T = {T} is not a whole number of steps dt = {dt} (T/dt = {T / dt})")
    if scheme not in ("euler", "milstein"):
        raise ValueError(f"scheme must be 'euler' or 'milstein', got {scheme!r}")
    if scheme == "milstein":
        missing = [p for p in cm.populations if not cm.module.MILSTEIN.get(p, False)]
        if missing:
            raise ValueError(f"model {cm.name!r}: the derivation provides no Milstein terms for population(s) "
                             f"{missing} (the noise is not commutative); use scheme='euler'")
    if positions not in ("lattice", "uniform"):
        raise ValueError(f"positions must be 'lattice' or 'uniform', got {positions!r}")
    jacobian_every = int(jacobian_every)
    if jacobian_every < 1:
        raise ValueError(f"jacobian_every = {jacobian_every} must be >= 1")

    pops = cm.populations
    P, m, e = cm.P, cm.m, cm.e
    q = [int(cm.module.NOISE_DIM[p]) for p in pops]
    sizes = [int(math.floor(a * n + 0.5)) for a in cm.alpha]
    for p, s in zip(pops, sizes):
        if s < 1:
            raise ValueError(f"population {p!r} gets round(alpha n) = {s} neurons at n = {n}; increase n")
    rng = np.random.default_rng(seed)

    # positions, initial states
    pos = [_make_positions(cm, s, positions, rng) for s in sizes]
    X = [_initial_states(cm, p, m, s, ps, init, rng) for p, s, ps in zip(pops, sizes, pos)]

    # position bins
    if cm.pos_dim == 0:
        if nbins not in (None, 1):
            raise ValueError(f"model {cm.name!r} has no space: nbins must be 1, got {nbins}")
        nb = 1
    else:
        if nbins is None:
            nb = min(min(sizes), 16) if cm.pos_dim == 1 else min(math.isqrt(min(sizes)), 8)
        else:
            nb = int(nbins)
        if nb < 1:
            raise ValueError(f"nbins = {nb} must be >= 1")
    nbt = cm.n_positions(nb)
    bpos = cm.grid(nb)
    bins, counts = [], []
    for p, s, ps in zip(pops, sizes, pos):
        if cm.pos_dim == 0:
            bins.append(None)
            counts.append(np.array([float(s)]))
            continue
        idx = bin_index(ps, nb, cm.pos_dim)
        cnt = np.bincount(idx, minlength=nbt).astype(float)
        if np.any(cnt == 0):
            raise ValueError(f"population {p!r}: position bin {int(np.flatnonzero(cnt == 0)[0])} of {nbt} holds "
                             f"no neuron (n_a = {s}); use fewer bins (nbins) or more neurons")
        bins.append(idx)
        counts.append(cnt)
    if cm.pos_dim == 0:
        bin_centres = np.array([0.0])
    elif cm.pos_dim == 1:
        bin_centres = np.asarray(bpos[0], float)
    else:
        bin_centres = np.stack(bpos, axis=1)

    # coupling
    coup = make_coupling(cm, pos, sizes, coupling, lattice=(positions == "lattice"))
    lowrank = coup.kind == "lowrank"
    use_implicit = bool(implicit) and lowrank
    sq = math.sqrt(n)
    K, L = cm.K, cm.L

    fn = {kind: [cm.fn(kind, p) for p in pops]
          for kind in ("drift", "diffusion", "gain", "gain_slope", "input", "drive", "milstein")}
    prm = cm.params
    milstein = scheme == "milstein"

    # static parts of the input:  u_a + sqrt(n) h_a  (at neurons) and h_a at the bin centres
    static_in, const_in, h_centres = [], [], []
    for ia in range(P):
        st = "t" not in cm.uses("input", pops[ia]) and not cm.drive_time_dependent(pops[ia])
        static_in.append(st)
        if st:
            with np.errstate(all="ignore"):       # checked just below
                u = np.broadcast_to(np.asarray(fn["input"][ia](*pos[ia], 0.0, **prm), float), (sizes[ia],))
                h = np.broadcast_to(np.asarray(fn["drive"][ia](*pos[ia], 0.0, **prm), float), (sizes[ia],))
                hc = np.broadcast_to(np.asarray(fn["drive"][ia](*bpos, 0.0, **prm), float), (nbt,)).copy()
                tot = u + sq * h
            if not (np.all(np.isfinite(tot)) and np.all(np.isfinite(hc))):
                raise ValueError(f"model {cm.name!r}: the input u or the drive h of population {pops[ia]!r} is not "
                                 f"finite at some neuron position")
            const_in.append(_compact(tot, sizes[ia]))
            h_centres.append(hc)
        else:
            const_in.append(None)
            h_centres.append(None)
    # neurons sitting at the bin centres (lattice positions): the recorded lambda is read off there
    centre_idx = [None] * P
    if not lowrank and positions == "lattice":
        for ia, s in enumerate(sizes):
            if cm.pos_dim == 0:
                centre_idx[ia] = np.zeros(1, dtype=np.intp)
            elif cm.pos_dim == 1 and s % nb == 0:
                centre_idx[ia] = np.arange(nb) * (s // nb)
            elif cm.pos_dim == 2 and math.isqrt(s) % nb == 0:
                side = math.isqrt(s)
                st = side // nb
                centre_idx[ia] = np.add.outer(np.arange(nb) * st * side, np.arange(nb) * st).ravel()
    # additive autonomous noise: sigma (and the Milstein tensor) evaluated once
    static_sig, static_mil = [], []
    for ia in range(P):
        if not _state_or_time(cm, "diffusion", pops[ia]):
            zero = [np.zeros(sizes[ia])] * m
            sig = fn["diffusion"][ia](*zero, *pos[ia], 0.0, **prm)
            static_sig.append([[_compact(sig[i][k], sizes[ia]) for k in range(q[ia])] for i in range(m)])
        else:
            static_sig.append(None)
        mil = None
        if milstein and not _state_or_time(cm, "milstein", pops[ia]):
            zero = [np.zeros(sizes[ia])] * m
            Mt = fn["milstein"][ia](*zero, *pos[ia], 0.0, **prm)
            mil = [[[_compact(Mt[i][j][k], sizes[ia]) for k in range(q[ia])] for j in range(q[ia])]
                   for i in range(m)]
            if all(isinstance(v, float) and v == 0.0 for a_ in mil for b_ in a_ for v in b_):
                mil = "zero"
        static_mil.append(mil)
    psi_c = None
    if lowrank:
        psi_c = np.empty((K, nbt))
        vals = cm.module.psi(*bpos, **prm) if K else ()
        for k, v in enumerate(vals):
            psi_c[k] = v

    # fast spectrum at the initial state; explicit runs are checked against it
    with np.errstate(under="ignore"):
        GP0 = [np.asarray(fn["gain_slope"][ia](*X[ia], *pos[ia], 0.0, **prm), float) for ia in range(P)]
    eig = np.asarray(coup.fast_spectrum(pos, GP0)) * sq
    del GP0
    if not use_implicit:
        lim, mu = explicit_dt_limit(eig)
        if dt > lim:
            why = ("implicit=False" if lowrank else
                   f"the {coup.kind} coupling (kernel not separable) is explicit")
            raise ValueError(
                f"dt = {dt} is unstable: the largest stable dt is {lim:.6g} ({why}). The fast coupling mode "
                f"mu = sqrt(n) eig(W D) = {mu.real:.6g}{mu.imag:+.6g}i at the initial state (n = {n}) needs "
                f"dt <= 2 Re(-mu)/|mu|^2 = {lim:.6g} for explicit Euler; use dt <= {lim:.6g}"
                + (" or implicit=True" if lowrank else ""))

    # records
    if record_every is None:
        stride = 1 if nsteps <= 200 else max(10, int(math.ceil(nsteps / 10000)))
    else:
        stride = max(1, int(round(float(record_every) / dt)))
    nrec = (nsteps - 1) // stride + 1
    times = np.arange(nrec) * (stride * dt)
    rec_mean = np.empty((nrec, P, nbt))
    rec_var = np.empty((nrec, P, nbt))
    rec_gbar = np.empty((nrec, P, nbt))
    rec_lam = np.empty((nrec, P, nbt))
    rec_lam_state = np.empty((nrec, P, nbt))

    # lambda records: 'lowrank' (average of the coefficients c over the interval, times psi at the
    # centres), 'centres' (explicit fields read off at neurons sitting on the bin centres, averaged),
    # 'sample' (direct summation at the centres at the start of the interval only)
    if lowrank:
        lam_mode = "lowrank"
    elif all(ci is not None for ci in centre_idx):
        lam_mode = "centres"
    else:
        lam_mode = "sample"
    c_acc = np.zeros(P * K)
    cs_acc = np.zeros(P * K)
    f_acc = np.zeros((P, nbt))
    h_acc = np.zeros((P, nbt))
    dynamic_h = [ia for ia in range(P) if not static_in[ia]]
    n_acc = 0

    # work buffers
    dX = [np.empty((m, s)) for s in sizes]
    dW = [np.empty((qa, s)) for qa, s in zip(q, sizes)]
    Fbuf = [np.empty(s) for s in sizes]
    Tbuf = [np.empty(s) for s in sizes] if use_implicit else None
    sdt = math.sqrt(dt)
    B = coup.B if lowrank else None
    GP = [None] * P
    Amat = None
    eyePL = np.eye(P * L) if lowrank else None

    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for step in range(nsteps):
            t = step * dt
            xs = [tuple(X[ia][i] for i in range(m)) for ia in range(P)]
            # gains and coupling
            G = [fn["gain"][ia](*xs[ia], *pos[ia], t, **prm) for ia in range(P)]
            if lowrank:
                c = coup.coefficients(G)
                if not np.all(np.isfinite(c)):
                    _blowup(cm, X, G, t, "the coupling moments")
                fields = None
                if use_implicit and step % jacobian_every == 0:
                    GP = [fn["gain_slope"][ia](*xs[ia], *pos[ia], t, **prm) for ia in range(P)]
                    S = coup.slope_moments(GP)
                    Amat = eyePL - (dt * sq) * (S @ B)
            else:
                fields = coup.field(G)
                c = None
            if not use_implicit and step and step % STABILITY_CHECK_EVERY == 0:
                GPc = [fn["gain_slope"][ia](*xs[ia], *pos[ia], t, **prm) for ia in range(P)]
                lim, mu = explicit_dt_limit(np.asarray(coup.fast_spectrum(pos, GPc)) * sq)
                if dt > lim:
                    raise SimulationUnstable(
                        f"model {cm.name!r}: at t = {t:.6g} the explicit step dt = {dt} exceeds the stability limit "
                        f"{lim:.6g} of the fast coupling mode mu = sqrt(n) eig(W D) = {mu.real:.6g}{mu.imag:+.6g}i "
                        f"(the gain slopes changed since the start, n = {n}); use dt <= {lim:.6g}"
                        + (" or implicit=True" if lowrank else ""))
            s_vec = np.empty(P * L) if use_implicit else None

            for ia in range(P):
                dxa, dwa = dX[ia], dW[ia]
                # Brownian increments
                if noise is None:
                    rng.standard_normal(out=dwa)
                    dwa *= sdt
                else:
                    noise(step, pops[ia], dt, dwa)
                # diffusion
                sig = static_sig[ia]
                if sig is None:
                    sig = fn["diffusion"][ia](*xs[ia], *pos[ia], t, **prm)
                for i in range(m):
                    for k in range(q[ia]):
                        sv = _scalar_view(sig[i][k])
                        if k == 0:
                            np.multiply(dwa[0], sig[i][0] if sv is None else sv, out=dxa[i])
                        else:
                            dxa[i] += (sig[i][k] if sv is None else sv) * dwa[k]
                if milstein and static_mil[ia] != "zero":
                    Mt = static_mil[ia]
                    if Mt is None:
                        Mt = fn["milstein"][ia](*xs[ia], *pos[ia], t, **prm)
                    for i in range(m):
                        for j in range(q[ia]):
                            for k in range(q[ia]):
                                prod = dwa[j] * dwa[k]
                                if j == k:
                                    prod -= dt
                                prod *= Mt[i][j][k]
                                prod *= 0.5
                                dxa[i] += prod
                # drift and input:  dt (f + u + sqrt(n) r)
                f = fn["drift"][ia](*xs[ia], *pos[ia], t, **prm)
                F = Fbuf[ia]
                if lowrank:
                    v = coup.psi_combine(ia, c[ia * K:(ia + 1) * K], F)
                    if not isinstance(v, np.ndarray):
                        F.fill(v)
                else:
                    np.copyto(F, fields[ia])
                F *= sq
                if static_in[ia]:
                    F += const_in[ia]
                else:
                    F += fn["input"][ia](*pos[ia], t, **prm)
                    F += sq * np.asarray(fn["drive"][ia](*pos[ia], t, **prm), float)
                F += f[e]
                F *= dt
                dxa[e] += F
                for i in range(m):
                    if i != e:
                        dxa[i] += dt * np.asarray(f[i])
                if use_implicit:
                    tb = Tbuf[ia]
                    np.multiply(dxa[e], GP[ia], out=tb)
                    at = coup.atoms[ia]
                    s_vec[ia * L:(ia + 1) * L] = at.moments(tb)[at.chi_idx]

            if use_implicit:
                try:
                    dmu = np.linalg.solve(Amat, s_vec)
                except np.linalg.LinAlgError:
                    raise SimulationBlowUp(
                        f"model {cm.name!r}, t = {t:.6g}: the linearly implicit coupling solve "
                        f"(I - dt sqrt(n) S B) dmu = s is singular (dt sqrt(n) = {dt * sq:.4g}); a fast eigenvalue of W D is real and positive, "
                        f"the balanced state is not attracting") from None
                dz = B @ dmu
                c_eff = c + dz
            else:
                c_eff = c

            # records: the state at the start of each record interval; lambda averaged over the
            # steps of the interval (the multiplier applied in each step)
            if step % stride == 0:
                r = step // stride
                for ia in range(P):
                    xe = X[ia][e]
                    g = G[ia]
                    if bins[ia] is None:
                        mx = float(xe.sum()) / sizes[ia]
                        rec_mean[r, ia] = mx
                        rec_var[r, ia] = max(0.0, float(np.dot(xe, xe)) / sizes[ia] - mx * mx)
                        rec_gbar[r, ia] = float(np.broadcast_to(g, (sizes[ia],)).sum()) / sizes[ia]
                    else:
                        cnt = counts[ia]
                        mx = np.bincount(bins[ia], weights=xe, minlength=nbt) / cnt
                        rec_mean[r, ia] = mx
                        rec_var[r, ia] = np.maximum(
                            np.bincount(bins[ia], weights=xe * xe, minlength=nbt) / cnt - mx * mx, 0.0)
                        rec_gbar[r, ia] = np.bincount(bins[ia], weights=np.broadcast_to(g, (sizes[ia],)),
                                                      minlength=nbt) / cnt
                if lam_mode == "sample":
                    f_acc[:] = field_at(cm, bpos, pos, sizes, G)
            if lam_mode == "lowrank":
                c_acc += c_eff
                cs_acc += c
            elif lam_mode == "centres":
                for ia in range(P):
                    f_acc[ia] += np.broadcast_to(fields[ia], (sizes[ia],))[centre_idx[ia]]
            for ia in dynamic_h:
                h_acc[ia] += np.broadcast_to(np.asarray(fn["drive"][ia](*bpos, t, **prm), float), (nbt,))
            n_acc += 1
            if step % stride == stride - 1 or step == nsteps - 1:
                r = step // stride
                if lam_mode == "lowrank":
                    fc = (c_acc.reshape(P, K) @ psi_c) / n_acc if K else np.zeros((P, nbt))
                    fs = (cs_acc.reshape(P, K) @ psi_c) / n_acc if K else np.zeros((P, nbt))
                    c_acc[:] = 0.0
                    cs_acc[:] = 0.0
                elif lam_mode == "centres":
                    fc = fs = f_acc / n_acc
                else:
                    fc = fs = f_acc
                for ia in range(P):
                    hc = h_centres[ia] if static_in[ia] else h_acc[ia] / n_acc
                    rec_lam[r, ia] = sq * (fc[ia] + hc)
                    rec_lam_state[r, ia] = sq * (fs[ia] + hc)
                f_acc[:] = 0.0
                h_acc[:] = 0.0
                n_acc = 0

            # update
            for ia in range(P):
                X[ia] += dX[ia]
                if use_implicit:
                    corr = coup.psi_combine(ia, dz[ia * K:(ia + 1) * K], Fbuf[ia])
                    X[ia][e] += (dt * sq) * corr
                tot = float(np.sum(X[ia]))
                if not math.isfinite(tot):
                    _blowup(cm, X, None, t + dt, "the states", pop=pops[ia], implicit=use_implicit)

    return SimulationResult(
        model=cm, n=n, T=T, dt=dt, seed=seed, scheme=scheme, positions_kind=positions,
        coupling=coup.kind, implicit=use_implicit, sizes=dict(zip(pops, sizes)), times=times,
        mean=rec_mean, variance=rec_var, gbar=rec_gbar, lam=rec_lam, lam_state=rec_lam_state,
        bin_centres=bin_centres,
        bin_positions=bpos, final_states=dict(zip(pops, X)), positions=dict(zip(pops, pos)),
        fast_eigenvalues=eig)


def _blowup(cm, X, G, t, what, pop=None, implicit=None):
    """Raise SimulationBlowUp naming the time, the population and the likely cause."""
    if pop is None and G is not None:
        for ia, p in enumerate(cm.populations):
            if not np.all(np.isfinite(G[ia])):
                pop = p
                break
    detail = ""
    if pop is not None:
        xa = X[cm.populations.index(pop)]
        nbad = int(np.count_nonzero(~np.isfinite(xa)))
        detail = f"; population {pop!r}: {nbad} of {xa.size} state values non-finite"
    if implicit is None:
        hint = ""
    elif implicit:
        hint = (" The coupling was linearly implicit, so the blow-up comes from the intrinsic dynamics "
                "(drift / noise) or from a fast mode with positive real part.")
    else:
        hint = (" The coupling was explicit: dt may exceed the stability limit of a fast mode between two "
                "checks, or the intrinsic dynamics blow up; reduce dt or use implicit=True.")
    raise SimulationBlowUp(f"model {cm.name!r}: the particle simulation blew up at t = {t:.6g}: {what} "
                           f"became non-finite (NaN or overflow){detail}.{hint}")
