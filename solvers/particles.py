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

Stiffness and the exponential coupling step.  The sqrt(n) coupling moves the imbalance at rates
sqrt(n) * eig(W D) (DESIGN.md §2, §4b): fast relaxation, or fast oscillation and growth where the
manifold is unstable.  With a separable kernel the coupling is propagated by an exponential
(exponential-Euler / Rosenbrock) step on the low-rank coupling subspace, which reproduces the
linearised fast flow exactly, oscillations and growth included (the linearly implicit Euler step it
replaces was stable but damped them: at z = dt sqrt(n) mu = 0.3 i it shrank the amplitude 4 % per step
and hid a Hopf instability at the default dt):

  Let mu_{b,l} = mean_{i in b} chi_l(theta_i) g_b(x_i) (P L moments), c = B mu (B = constraint_matrix,
  alpha_b included), so that sqrt(n) r_a(theta_j) = sqrt(n) [psi(theta_j) . c_a + h_a(theta_j)].
  Linearise the gains in the step, g_b(x_i + dx_i) ~ g_b(x_i) + g'_b(x_i) dx_{i,e}.  The moments then
  obey the linear system  d mu / dt = J (mu - mu0) + s / dt  with

      s_{b,l}       = mean_{i in b} chi_l(theta_i) g'_b(x_i) dx^expl_{i,e}               (P L)
      S[(b,l),(a,k)] = delta_ab M_b[l,k],  M_b[l,k] = mean_{i in b} chi_l psi_k g'_b(x_i)  (P L x P K)
      J = sqrt(n) S B,

  dx^expl the explicit Euler–Maruyama (or Milstein) increment with the coupling c at the start.
  The exact solution over the step moves mu by phi_1(Z) s (Z = dt J), and the coupling averaged
  over the step is c + dz with dz = B phi_2(Z) s (solvers.exponential).  Every neuron gets that
  average:  dx_j = dx^expl_j + dt sqrt(n) psi(theta_j) . dz_a e,  which moves mu (linearised) by
  s + Z phi_2(Z) s = phi_1(Z) s: consistent.  Z has the fast eigenvalues z = dt sqrt(n) eig(B S) of
  q -> W(D q) with the neurons' own slopes; a pure fast mode is multiplied by e^z per step, whatever
  dt sqrt(n).  The intrinsic drift (rate J_f, e.g. -1) stays explicit inside the step, which shifts a
  fast mode's growth rate by about |J_f| theta^2 / 6 at theta = dt sqrt(n) Im mu.  With
  ``jacobian_every = k > 1`` the slopes g' (and phi_2) are refreshed every k steps only.

  The neurons feel the multiplier lambda = sqrt(n) [psi . (c + dz) + h] (the step average), and this
  is what is recorded as ``lam``; explicitly (implicit=False, or FFT / dense coupling) it is
  lambda_n = sqrt(n) r_a of the current empirical measure.  ``lam_state`` is sqrt(n) r_a of the
  empirical measure at the start of each step; the linearisation misses the Itô term
  1/2 g'' sigma^2 dt of the expected change of the gains, so lam_state carries an O(dt sqrt(n))
  residual and ``lam`` is the multiplier consistent with the mean states (for f = -x their time
  averages are equal).

The step audit (dt_guard).  At the start and every STABILITY_CHECK_EVERY steps the fast spectrum
sqrt(n) eig(W D) with the current slopes (exact for separable kernels, a coarse-lattice estimate for
FFT / dense) is compared with the step: |dt mu| must not exceed accurate_z (0.49 for the exponential
step, 0.04 for explicit Euler at the default 2 % tolerance: solvers.exponential).  dt_guard='refine'
(default) divides dt by the smallest integer that satisfies it (records keep their times);
'refuse' raises StepTooCoarse with the largest accurate dt; 'off' skips the accuracy check.

Explicit runs with dt_guard='off' are still checked for stability at the same audits: a dt beyond
the explicit Euler limit 2 Re(-mu)/|mu|^2 is refused before the run (ValueError) or stops it with
SimulationUnstable: near the limit, explicit Euler does not always blow up, it can settle on a
wrong, oscillating state (gains saturate), which must not be returned silently.

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
from .exponential import DEFAULT_TOL, accurate_z, phi_functions
from .output import state_record
from .resources import check_particles_memory


#: The step is audited against the fast spectrum (current gain slopes) every this many steps.
STABILITY_CHECK_EVERY = 20
#: dt_guard='refine' divides the requested dt by at most this factor before it refuses.
MAX_REFINE = 256


class SimulationBlowUp(RuntimeError):
    """The particle states became non-finite (NaN or overflow) during a run."""


class SimulationUnstable(ValueError):
    """An explicit run's dt exceeds the stability limit of a fast coupling mode (found during the run,
    after the gain slopes changed; the check before the run raises a plain ValueError)."""


class StepTooCoarse(ValueError):
    """The time step cannot resolve the fast coupling dynamics: dt sqrt(n) |mu| exceeds the accurate
    limit of the coupling step (dt_guard='refuse', or 'refine' beyond MAX_REFINE).  Attributes:
    dt (the step in use), dt_accurate (the largest accurate step at that state), t, mu."""

    def __init__(self, message, dt, dt_accurate, t, mu):
        super().__init__(message)
        self.dt, self.dt_accurate, self.t, self.mu = dt, dt_accurate, t, mu


# ---------------------------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------------------------
@dataclass
class SimulationResult:
    """Output of simulate().  Arrays over records are indexed (record, population, bin).

    dt is the step actually used at the end of the run (dt_requested the one asked for; the guard may
    have refined it), coupling_step 'exponential' or 'explicit', step_audit a dict with the accuracy
    limit z_accurate of |dt sqrt(n) mu|, the largest |z| met at the checks (max_z, at the step in use
    then), the fast eigenvalue that set it, and the refinements as (t, old dt, new dt, z) tuples.
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
    dt_requested: float = None
    coupling_step: str = "exponential"
    step_audit: dict = field(default_factory=dict)

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
                            sizes=self.sizes, samples=av["samples"], dt_requested=self.dt_requested,
                            coupling_step=self.coupling_step,
                            step_audit={k: (str(v) if k == "mu" else v) for k, v in self.step_audit.items()})


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
             noise=None, jacobian_every: int = 1, dt_guard: str = "refine",
             dt_tol: float = DEFAULT_TOL) -> SimulationResult:
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
    coupling: 'auto' | 'lowrank' | 'fft' | 'dense' (solvers.coupling).  implicit: propagate the
          low-rank coupling with the exponential step (True, the default) or explicitly (False); FFT
          and dense couplings are always explicit.  jacobian_every: refresh the gain slopes of the
          exponential step every k steps (1: every step).
    dt_guard: what to do when dt cannot resolve the fast coupling modes, i.e. when
          dt sqrt(n) max|mu| exceeds solvers.exponential.accurate_z(step, dt_tol) at the audit of the
          current state (step 0, then every STABILITY_CHECK_EVERY steps): 'refine' (default) divides
          dt by the smallest integer that makes it accurate (the records keep their times; at most
          MAX_REFINE in all, else StepTooCoarse), 'refuse' raises StepTooCoarse with the largest
          accurate dt, 'off' only refuses explicit steps that are unstable.
    noise: optional callable(step, pop, dt, out) filling out (q, n_a) with the Brownian increments
          of that step (replaces the Generator's normals).  Steps are counted at the step in use: after
          a refinement by k, step numbers and dt are those of the refined step.
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
    if dt_guard not in ("refine", "refuse", "off"):
        raise ValueError(f"dt_guard must be 'refine', 'refuse' or 'off', got {dt_guard!r}")
    dt_requested = dt

    pops = cm.populations
    P, m, e = cm.P, cm.m, cm.e
    q = [int(cm.module.NOISE_DIM[p]) for p in pops]
    sizes = [int(math.floor(a * n + 0.5)) for a in cm.alpha]
    for p, s in zip(pops, sizes):
        if s < 1:
            raise ValueError(f"population {p!r} gets round(alpha n) = {s} neurons at n = {n}; increase n")
    # refuse before allocating when the machine cannot hold the run (InsufficientMemory)
    check_particles_memory(sizes, m, q, coupling, K=cm.K, L=cm.L, pos_dim=cm.pos_dim,
                           nrec=min(nsteps, 10000), nbins_total=cm.n_positions(nbins or 16))
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

    # the step audit: the fast spectrum sqrt(n) eig(W D) with the current gain slopes against the step
    step_kind = "exponential" if use_implicit else "explicit"
    z_acc = accurate_z(step_kind, dt_tol)
    audit = {"z_accurate": z_acc, "tolerance": dt_tol, "max_z": 0.0, "mu": None, "refinements": [],
             "checks": 0}
    eig = None

    def audit_step(t_now, GPc, dt_now):
        """Check dt against the fast spectrum at the current slopes; return the refinement factor
        (1: accurate, or dt_guard 'off' and stable) or raise."""
        nonlocal eig
        ev = np.asarray(coup.fast_spectrum(pos, GPc)) * sq
        if eig is None:
            eig = ev
        audit["checks"] += 1
        if ev.size == 0:
            return 1
        kmax = int(np.argmax(np.abs(ev)))
        mu = complex(ev[kmax])
        z = dt_now * abs(mu)
        where = "at the initial state" if t_now == 0 else f"at t = {t_now:.6g}"
        mu_txt = f"mu = sqrt(n) eig(W D) = {mu.real:.6g}{mu.imag:+.6g}i"
        if dt_guard == "off" or z <= z_acc:
            if step_kind == "explicit":
                lim, mu_s = explicit_dt_limit(ev)
                if dt_now > lim:
                    why = ("implicit=False" if lowrank else
                           f"the {coup.kind} coupling (kernel not separable) is explicit")
                    msg = (f"model {cm.name!r}: dt = {dt_now} is unstable {where} (it exceeds the stability "
                           f"limit of a fast coupling mode): the largest stable dt is "
                           f"{lim:.6g} ({why}). The fast coupling mode mu = sqrt(n) eig(W D) = "
                           f"{mu_s.real:.6g}{mu_s.imag:+.6g}i (n = {n}) needs dt <= 2 Re(-mu)/|mu|^2 = "
                           f"{lim:.6g} for explicit Euler; use dt <= {lim:.6g}"
                           + (" or implicit=True" if lowrank else ""))
                    raise (ValueError(msg) if t_now == 0 else SimulationUnstable(msg))
            if z > audit["max_z"]:
                audit["max_z"], audit["mu"] = z, mu
            return 1
        dt_ok = z_acc / abs(mu)
        k = int(math.ceil(z / z_acc * (1 + 1e-12)))
        total = dt_requested / (dt_now / k)
        if dt_guard == "refuse" or total > MAX_REFINE * (1 + 1e-9):
            extra = (f" (refining would need dt = {dt_now / k:.4g}, more than MAX_REFINE = {MAX_REFINE} times "
                     f"below the requested {dt_requested})" if dt_guard == "refine" else "")
            raise StepTooCoarse(
                f"model {cm.name!r}: dt = {dt_now:g} does not resolve the fast coupling dynamics {where}: "
                f"{mu_txt} (n = {n}) gives |dt mu| = {z:.3g} > {z_acc:.3g}, the accurate limit of the "
                f"{step_kind} coupling step (relative error {dt_tol:g} of the fast mode); the largest "
                f"accurate dt is {dt_ok:.4g}{extra}. Use dt <= {dt_ok:.4g}, dt_guard='refine' (CLI: the "
                f"default) or, knowingly, dt_guard='off' (--dt-guard off)", dt_now, dt_ok, t_now, mu)
        audit["refinements"].append((t_now, dt_now, dt_now / k, z))
        if z / k > audit["max_z"]:
            audit["max_z"], audit["mu"] = z / k, mu
        return k

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

    # lambda records: 'lowrank' (time average of the coefficients c over the interval, times psi at
    # the centres), 'centres' (explicit fields read off at neurons sitting on the bin centres,
    # averaged), 'sample' (direct summation at the centres at the start of the interval only)
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
    w_acc = 0.0                                   # time accumulated in the current record interval

    # work buffers
    dX = [np.empty((m, s)) for s in sizes]
    dW = [np.empty((qa, s)) for qa, s in zip(q, sizes)]
    Fbuf = [np.empty(s) for s in sizes]
    Tbuf = [np.empty(s) for s in sizes] if use_implicit else None
    sdt = math.sqrt(dt)
    B = coup.B if lowrank else None
    GP = [None] * P
    Phi2 = None
    last_check = None

    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        step = 0
        while step < nsteps:
            t = step * dt
            xs = [tuple(X[ia][i] for i in range(m)) for ia in range(P)]
            # gains, slopes and the step audit
            G = [fn["gain"][ia](*xs[ia], *pos[ia], t, **prm) for ia in range(P)]
            check = last_check is None or step - last_check >= STABILITY_CHECK_EVERY
            refresh = use_implicit and (Phi2 is None or step % jacobian_every == 0)
            if check or refresh:
                GP = [fn["gain_slope"][ia](*xs[ia], *pos[ia], t, **prm) for ia in range(P)]
            if check:
                last_check = step
                k = audit_step(t, GP, dt)
                if k > 1:                         # refine: the same times, k times more steps
                    step, nsteps, stride, dt = step * k, nsteps * k, stride * k, dt / k
                    last_check = step
                    sdt = math.sqrt(dt)
                    refresh = use_implicit
            if lowrank:
                c = coup.coefficients(G)
                if not np.all(np.isfinite(c)):
                    _blowup(cm, X, G, t, "the coupling moments")
                fields = None
                if refresh:
                    S = coup.slope_moments(GP)
                    Phi2 = phi_functions((dt * sq) * (S @ B))[2]
            else:
                fields = coup.field(G)
                c = None
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
                # exponential step on the coupling moments: the explicit increment s of mu becomes
                # phi_1(Z) s (Z = dt sqrt(n) S B); the coupling averaged over the step is c + B phi_2(Z) s
                dz = B @ (Phi2 @ s_vec)            # non-finite values are caught with the states below
                c_eff = c + dz
            else:
                c_eff = c

            # records: the state at the start of each record interval; lambda averaged over the
            # interval (the multiplier applied in each step)
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
                c_acc += dt * c_eff
                cs_acc += dt * c
            elif lam_mode == "centres":
                for ia in range(P):
                    f_acc[ia] += dt * np.broadcast_to(fields[ia], (sizes[ia],))[centre_idx[ia]]
            for ia in dynamic_h:
                h_acc[ia] += dt * np.broadcast_to(np.asarray(fn["drive"][ia](*bpos, t, **prm), float), (nbt,))
            w_acc += dt
            if step % stride == stride - 1 or step == nsteps - 1:
                r = step // stride
                if lam_mode == "lowrank":
                    fc = (c_acc.reshape(P, K) @ psi_c) / w_acc if K else np.zeros((P, nbt))
                    fs = (cs_acc.reshape(P, K) @ psi_c) / w_acc if K else np.zeros((P, nbt))
                    c_acc[:] = 0.0
                    cs_acc[:] = 0.0
                elif lam_mode == "centres":
                    fc = fs = f_acc / w_acc
                else:
                    fc = fs = f_acc
                for ia in range(P):
                    hc = h_centres[ia] if static_in[ia] else h_acc[ia] / w_acc
                    rec_lam[r, ia] = sq * (fc[ia] + hc)
                    rec_lam_state[r, ia] = sq * (fs[ia] + hc)
                f_acc[:] = 0.0
                h_acc[:] = 0.0
                w_acc = 0.0

            # update
            for ia in range(P):
                X[ia] += dX[ia]
                if use_implicit:
                    corr = coup.psi_combine(ia, dz[ia * K:(ia + 1) * K], Fbuf[ia])
                    X[ia][e] += (dt * sq) * corr
                tot = float(np.sum(X[ia]))
                if not math.isfinite(tot):
                    _blowup(cm, X, None, t + dt, "the states", pop=pops[ia], implicit=use_implicit)
            step += 1

    return SimulationResult(
        model=cm, n=n, T=T, dt=dt, seed=seed, scheme=scheme, positions_kind=positions,
        coupling=coup.kind, implicit=use_implicit, sizes=dict(zip(pops, sizes)), times=times,
        mean=rec_mean, variance=rec_var, gbar=rec_gbar, lam=rec_lam, lam_state=rec_lam_state,
        bin_centres=bin_centres,
        bin_positions=bpos, final_states=dict(zip(pops, X)), positions=dict(zip(pops, pos)),
        fast_eigenvalues=eig, dt_requested=dt_requested, coupling_step=step_kind, step_audit=audit)


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
        hint = (" The coupling step was exponential (exact for the linearised fast flow), so the blow-up "
                "comes from the intrinsic dynamics (drift / noise) or from a growing fast mode.")
    else:
        hint = (" The coupling was explicit: dt may exceed the stability limit of a fast mode between two "
                "checks, or the intrinsic dynamics blow up; reduce dt or use implicit=True.")
    raise SimulationBlowUp(f"model {cm.name!r}: the particle simulation blew up at t = {t:.6g}: {what} "
                           f"became non-finite (NaN or overflow){detail}.{hint}")
