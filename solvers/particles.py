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

Module layout.  This module holds the result type and the run loop (simulate); the parts live in
  solvers.particle_setup     argument checks, model resolution, sizes, memory check, positions,
                             initial states, position bins (setup_particles);
  solvers.particle_coupling  the coupling operator and its step (make_coupling_step: exponential
                             low-rank, explicit low-rank, explicit FFT / dense);
  solvers.particle_steps     the Euler–Maruyama / Milstein increment (SchemeStep);
  solvers.particle_guard     the step audit (StepGuard, dt_guard), the stability limit and the
                             blow-up / instability exceptions;
  solvers.particle_records   the records (Recorder);
  solvers.particle_compiled  the same loop on the compiled (numba) step generated per model
                             (backend='numba'; solvers.particle_numba compiles and caches it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .compiled import CompiledModel
from .exponential import DEFAULT_TOL
from .output import Record, state_record
from .particle_compiled import AUTO_NEURON_STEPS, BackendFallback, choose_backend, run_compiled
from .particle_coupling import make_coupling_step
from .particle_guard import (MAX_REFINE, STABILITY_CHECK_EVERY, SimulationBlowUp, SimulationUnstable,
                             StepGuard, StepTooCoarse, blowup, explicit_dt_limit)
from .particle_records import Recorder
from .particle_setup import check_run, generated_functions, resolve_model, setup_particles
from .particle_steps import SchemeStep, static_inputs

__all__ = ["simulate", "SimulationResult", "SimulationBlowUp", "SimulationUnstable", "StepTooCoarse",
           "explicit_dt_limit", "STABILITY_CHECK_EVERY", "MAX_REFINE", "AUTO_NEURON_STEPS", "BackendFallback"]


# ---------------------------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------------------------
@dataclass
class SimulationResult(Record):
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
    backend: str = "numpy"

    def save_npz(self, path) -> None:
        """The time series as NPZ (written atomically): times (nt,); mean, variance, gbar, lambda,
        lambda_state (nt, P, nbins); bin_centres; populations; n, seed, dt, dt_requested, T."""
        from .atomic import atomic_savez
        atomic_savez(path, times=self.times, mean=self.mean, variance=self.variance, gbar=self.gbar,
                     **{"lambda": self.lam, "lambda_state": self.lam_state},
                     bin_centres=np.asarray(self.bin_centres, float),
                     populations=np.array(self.model.populations), n=np.array(self.n),
                     seed=np.array(self.seed), dt=np.array(self.dt),
                     dt_requested=np.array(self.dt_requested if self.dt_requested is not None else self.dt),
                     T=np.array(self.T))

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
                            coupling_step=self.coupling_step, backend=self.backend,
                            step_audit={k: (str(v) if k == "mu" else v) for k, v in self.step_audit.items()})



# ---------------------------------------------------------------------------------------------
# the simulator
# ---------------------------------------------------------------------------------------------
def simulate(model, n: int, T: float, dt: float, *, seed: int = 0, scheme: str = "euler", init=None,
             positions: str = "lattice", record_every: float | None = None, nbins: int | None = None,
             params: dict | None = None, coupling: str = "auto", implicit: bool = True,
             noise=None, jacobian_every: int = 1, dt_guard: str = "refine",
             dt_tol: float = DEFAULT_TOL, backend: str | None = None) -> SimulationResult:
    """Integrate the network of DESIGN.md §1 on [0, T] with step dt (see the module docstring).

    The run composes its parts (module docstring, "Module layout"): setup (particle_setup), the
    coupling step (particle_coupling), the Euler–Maruyama / Milstein increment (particle_steps), the
    step audit (particle_guard) and the records (particle_records); this function only loops.

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
    backend: 'numba' (the compiled step of the generated module, solvers.particle_compiled: low-rank
          couplings; its own counter-based noise, so other random numbers than the NumPy path for the
          same seed, identical steps when both get the same ``noise``), 'numpy' (the reference path),
          or None (default): 'numba' for runs of at least AUTO_NEURON_STEPS neuron-steps where it
          applies, else 'numpy' (a BackendFallback warning says why when a large run cannot be compiled).
          The result's ``backend`` names the one used.
    """
    cm = resolve_model(model, params)
    n, T, dt, nsteps, jacobian_every = check_run(cm, n, T, dt, scheme=scheme, positions=positions,
                                                 jacobian_every=jacobian_every, dt_guard=dt_guard)
    dt_requested = dt
    s = setup_particles(cm, n, nsteps, seed=seed, init=init, positions=positions, nbins=nbins,
                        coupling=coupling)
    pops, P, m, e, sizes, pos, X = s.pops, s.P, s.m, s.e, s.sizes, s.pos, s.X
    fn = generated_functions(cm)
    prm = cm.params
    cstep = make_coupling_step(cm, pos, sizes, coupling, lattice=(positions == "lattice"),
                               implicit=bool(implicit), n=n, jacobian_every=jacobian_every)
    coup = cstep.coup
    use_implicit = cstep.kind == "exponential"
    sq = math.sqrt(n)
    guard = StepGuard(cm, coup, pos, n, cstep.kind, dt_guard, dt_tol, dt_requested)
    used, _why = choose_backend(backend, cm, cstep, sum(sizes) * nsteps)
    if used == "numba":
        st, _, h_centres = static_inputs(cm, fn, pos, sizes, s.bpos, s.nbt, sq)
        rec = Recorder(cm, s, n, nsteps, dt, record_every, lowrank=cstep.lowrank, positions=positions,
                       static_in=st, h_centres=h_centres, drive=fn["drive"])
        dt, nsteps, _ = run_compiled(cm, s, cstep, guard, rec, n, nsteps, dt, scheme=scheme, seed=seed,
                                     noise=noise)
        return _result(cm, s, n, T, dt, seed, scheme, positions, coup, use_implicit, rec, guard, cstep,
                       dt_requested, "numba")
    scheme_step = SchemeStep(cm, fn, pos, sizes, s.bpos, s.nbt, sq, scheme, s.rng, noise)
    rec = Recorder(cm, s, n, nsteps, dt, record_every, lowrank=cstep.lowrank, positions=positions,
                   static_in=scheme_step.static_in, h_centres=scheme_step.h_centres, drive=fn["drive"])
    times = rec.times
    gain, slope = fn["gain"], fn["gain_slope"]
    dX, Fbuf = scheme_step.dX, scheme_step.F
    sdt = math.sqrt(dt)
    GP = [None] * P

    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        step = 0
        while step < nsteps:
            t = step * dt
            xs = [tuple(X[ia][i] for i in range(m)) for ia in range(P)]
            # gains, slopes and the step audit
            G = [gain[ia](*xs[ia], *pos[ia], t, **prm) for ia in range(P)]
            check = guard.due(step)
            refresh = cstep.needs_slopes(step)
            if check or refresh:
                GP = [slope[ia](*xs[ia], *pos[ia], t, **prm) for ia in range(P)]
            if check:
                k = guard.check(step, t, GP, dt)
                if k > 1:                         # refine: the same times, k times more steps
                    step, nsteps, dt = step * k, nsteps * k, dt / k
                    rec.refine(k)
                    sdt = math.sqrt(dt)
                    refresh = cstep.uses_slopes
            # the coupling at the start of the step
            c = cstep.start(G)
            if c is not None and not np.all(np.isfinite(c)):
                blowup(cm, X, G, t, "the coupling moments")
            if refresh:
                cstep.refresh(GP, dt)
            # the explicit increment per population, then the coupling step's correction
            for ia in range(P):
                cstep.field_into(ia, Fbuf[ia])
                dxa = scheme_step.increment(ia, xs[ia], t, step, dt, sdt, Fbuf[ia])
                cstep.add_increment(ia, dxa[e], GP[ia])
            c_eff = cstep.finish()
            # records: the state at the start of each record interval; lambda averaged over the
            # interval (the multiplier applied in each step)
            rec.observe(step, nsteps, t, dt, X, G, c, c_eff, cstep.fields)
            # update
            for ia in range(P):
                X[ia] += dX[ia]
                cstep.correct(ia, X[ia][e], dt, Fbuf[ia])
                tot = float(np.sum(X[ia]))
                if not math.isfinite(tot):
                    blowup(cm, X, None, t + dt, "the states", pop=pops[ia], implicit=use_implicit)
            step += 1

    return _result(cm, s, n, T, dt, seed, scheme, positions, coup, use_implicit, rec, guard, cstep,
                   dt_requested, "numpy")


def _result(cm, s, n, T, dt, seed, scheme, positions, coup, use_implicit, rec, guard, cstep, dt_requested,
            backend) -> SimulationResult:
    return SimulationResult(
        model=cm, n=n, T=T, dt=dt, seed=seed, scheme=scheme, positions_kind=positions,
        coupling=coup.kind, implicit=use_implicit, sizes=dict(zip(s.pops, s.sizes)), times=rec.times,
        mean=rec.mean, variance=rec.var, gbar=rec.gbar, lam=rec.lam, lam_state=rec.lam_state,
        bin_centres=s.bin_centres,
        bin_positions=s.bpos, final_states=dict(zip(s.pops, s.X)), positions=dict(zip(s.pops, s.pos)),
        fast_eigenvalues=guard.eig, dt_requested=dt_requested, coupling_step=cstep.kind,
        step_audit=guard.audit, backend=backend)
