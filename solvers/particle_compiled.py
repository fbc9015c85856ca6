"""The compiled particle run (backend 'numba' of solvers.particles.simulate): the same scheme as the
NumPy loop, with the per-neuron work of a step fused into two parallel passes per population
(the generated kernels of derive.codegen_numba, loaded by solvers.particle_numba):

  explicit pass   dW, the Euler–Maruyama / Milstein increment with the coupling c = B mu at the start
                  of the step, x += dx^expl, and the moments s = mean chi g' dx^expl_e;
  (tiny, NumPy)   dz = B phi_2(Z) s, c_eff = c + dz (solvers.particle_coupling), records;
  finish pass     x_e += dt sqrt(n) psi . dz, then the gains g, the slopes g' (when the exponential
                  step or the step audit needs them) and the moments mu = mean chi g,
                  M = mean chi psi g', sum x (finiteness) of the new states.

Everything else (setup, the coupling operator and its phi_2, the step audit, the records) is the NumPy
path's own code.  The Brownian increments come from the counter-based generator of the kernels
(Philox4x32-10, key from numpy.random.SeedSequence(seed).spawn(1)[0]), or from ``noise`` (the same
callback as the NumPy path: both paths then take identical steps).  Sums are formed per fixed chunk
of neurons and added in a fixed order: the same seed gives the same bits for any number of threads.
No SymPy.
"""
from __future__ import annotations

import math

import numpy as np

from . import fast_spectrum
from .exponential import phi_functions
from .particle_guard import blowup
from .particle_numba import load_step
from .particle_steps import static_inputs

#: Runs of at least this many neuron-steps use the compiled step by default (backend=None): below it
#: the NumPy path is as fast as loading the cached kernels (~0.5 s; a first compilation takes longer).
AUTO_NEURON_STEPS = 10 ** 7


class _SlopeMatrix:
    """The coupling as the step audit sees it, with the slope matrix S already summed by the kernels
    (StepGuard calls fast_spectrum(positions, S) with the S passed to check)."""

    kind = "lowrank"

    def __init__(self, B):
        self.B = B

    def fast_spectrum(self, positions, S):
        """eig(B S) (solvers.coupling.LowRankCoupling.fast_spectrum with S precomputed)."""
        return fast_spectrum.eigenvalues(self.B @ S)


def noise_key(seed) -> tuple:
    """The 64-bit Philox key of a run (two uint32 words as numpy.uint64): SeedSequence(seed).spawn(1)[0],
    a stream independent of the Generator that draws the positions and initial states."""
    words = np.random.SeedSequence(seed).spawn(1)[0].generate_state(2, np.uint32)
    return np.uint64(words[0]), np.uint64(words[1])


class CompiledStep:
    """The kernels of one run and their buffers (per population): gains G and slopes GP (n_a,), the
    per-chunk partial sums, the static input u + sqrt(n) h, and the moments of the last finish pass
    (mu (P L,), S (P L, P K))."""

    def __init__(self, cm, setup, cstep, n: int, scheme: str, seed, noise=None):
        self.kern = kern = load_step(cm.module)
        self.cm, self.s, self.cstep, self.noise = cm, setup, cstep, noise
        self.coup = coup = cstep.coup
        #: FFT / dense couplings: the field r_a - h_a at the neurons, computed by the coupling operator
        #: (NumPy: FFT or BLAS), enters the kernels as the first atom row with weight 1
        self.field_coupling = coup.kind != "lowrank"
        self.atoms = None if self.field_coupling else coup.atoms
        self.P, self.K, self.L = cm.P, cm.K, cm.L
        self.sq = math.sqrt(n)
        self.milstein = scheme == "milstein"
        self.prm = np.array([cm.params[p] for p in kern.PARAMETERS], float)
        self.k0, self.k1 = noise_key(seed)
        fn = {k: [cm.fn(k, p) for p in cm.populations] for k in ("input", "drive", "gain")}
        self.static_in, const_in, self.h_centres = static_inputs(cm, fn, setup.pos, setup.sizes, setup.bpos,
                                                                 setup.nbt, self.sq)
        self.explicit, self.finish, self.cin, self.cstride = [], [], [], []
        self.G, self.GP, self.apart, self.mpart, self.spart, self.xpart, self.dW = [], [], [], [], [], [], []
        for ia, pop in enumerate(cm.populations):
            if kern.STATIC_INPUT[pop] != self.static_in[ia]:
                raise RuntimeError(f"model {cm.name!r}: the compiled step and the NumPy path disagree on "
                                   f"whether the input of {pop!r} depends on t; regenerate the model")
            ea, fb = kern.KERNELS[pop]
            self.explicit.append(getattr(kern, ea))
            self.finish.append(getattr(kern, fb))
            ci = const_in[ia]
            if ci is None or isinstance(ci, float):
                self.cin.append(np.array([0.0 if ci is None else ci]))
                self.cstride.append(0)
            else:
                self.cin.append(np.ascontiguousarray(ci, float))
                self.cstride.append(1)
            n_a = setup.sizes[ia]
            nr = kern.NR
            nch = -(-n_a // kern.CHUNK)
            self.G.append(np.empty(n_a))
            self.GP.append(np.zeros(n_a))
            self.apart.append(np.zeros((nch, nr + 1)))
            self.mpart.append(np.zeros((nch, nr + 1)))
            self.spart.append(np.zeros((nch, 1 + nr + nr * nr)))
            self.xpart.append(np.zeros(nch))
            self.dW.append(np.empty((setup.q[ia], n_a)) if noise is not None else np.zeros((1, 1)))
            if n_a * setup.q[ia] >= 2 ** 33:
                raise ValueError(f"population {pop!r}: {n_a} neurons exceed the compiled step's counter range")
        self.pos = [tuple(np.ascontiguousarray(p, float) for p in ps) for ps in setup.pos]
        # the atom rows, padded with zero rows up to the kernels' NR (fewer distinct atoms at these positions)
        self.U = []
        if self.field_coupling:
            if kern.NR < 1:
                raise RuntimeError(f"model {cm.name!r}: its compiled step has no coupling row (NR = 0) to carry "
                                   f"the {coup.kind} coupling's field")
            self.U = [np.zeros((kern.NR, n_a)) for n_a in setup.sizes]
        for ia, at in enumerate(self.atoms or ()):
            if at.U.shape[0] > kern.NR:
                raise RuntimeError(f"model {cm.name!r}: {at.U.shape[0]} coupling atoms at the positions of "
                                   f"{cm.populations[ia]!r}, more than the compiled step's NR = {kern.NR}")
            pad = np.zeros((kern.NR - at.U.shape[0], setup.sizes[ia]))
            self.U.append(at.U if not len(pad) else np.ascontiguousarray(np.vstack([at.U, pad])))
        self.mu = np.zeros(self.P * self.L)
        self.S = np.zeros((self.P * self.L, self.P * self.K))

    # ---- the low-rank algebra on the per-chunk sums (solvers.coupling._Atoms, same formulas) ----
    def _weights(self, a: int, c_a):
        """(w, shift): psi(theta_j) . c_a = sum_i w_i U_i(theta_j) + shift (as _Atoms.combine)."""
        at = self.atoms[a]
        coef = self.coup._psi_sel[a] @ c_a
        shift = float(coef @ at.const) if at.any_const else 0.0
        w = np.zeros(self.kern.NR)
        w[:len(at.nc_idx)] = coef[at.nc_idx]
        return w, shift

    def _moments(self, a: int, sums):
        """mean_j atom_i v_j from (sum_j U_i v_j (NR,), sum_j v_j) (as _Atoms.moments)."""
        at = self.atoms[a]
        out = at.const_over_n * float(sums[-1]) if at.any_const else np.empty(at.r)
        if at.has_rows:
            out[at.nc_idx] = sums[:len(at.nc_idx)] / at.n
        return out

    def _moments2(self, a: int, sums):
        """mean_j atom_i atom_i' v_j from (sum v, sum U_i v, sum U_i U_i' v) (as _Atoms.moments2)."""
        at = self.atoms[a]
        nr, NR = at.U.shape[0], self.kern.NR
        mean_v = float(sums[0]) / at.n
        out = at._cc * mean_v
        if at.has_rows:
            m1 = at.const_over_n * float(sums[0]) if at.any_const else np.empty(at.r)
            m1[at.nc_idx] = sums[1:1 + nr] / at.n
            out[:, at.nc_idx] = np.outer(at.const, m1[at.nc_idx])
            out[at.nc_idx, :] = np.outer(m1[at.nc_idx], at.const)
            out[at._ix_nn] = sums[1 + NR:].reshape(NR, NR)[:nr, :nr] / at.n
        return out

    # ---- the two passes --------------------------------------------------------------------------
    def explicit_pass(self, X, c, t: float, step: int, dt: float, collect: bool) -> np.ndarray:
        """The explicit increment of every population in place (X += dX^expl); returns the moments
        s (P L,) of g' dx^expl_e (zeros unless collect)."""
        L, K = self.L, self.K
        s_vec = np.zeros(self.P * L)
        sdt = math.sqrt(dt)
        for a in range(self.P):
            w, shift = self._weights(a, c[a * K:(a + 1) * K])
            draw = self.noise is None
            if not draw:
                self.noise(step, self.cm.populations[a], dt, self.dW[a])
            self.explicit[a](X[a], *self.pos[a], self.U[a], w, shift, self.cin[a], self.cstride[a], t, dt,
                             sdt, self.sq, self.dW[a], draw, self.k0, self.k1, a, step, self.GP[a], collect,
                             self.milstein, self.prm, self.apart[a])
            if collect:
                sums = self.apart[a].sum(axis=0)
                s_vec[a * L:(a + 1) * L] = self._moments(a, sums)[self.atoms[a].chi_idx]
        return s_vec

    def field_explicit_pass(self, X, fields, t: float, step: int, dt: float) -> None:
        """The explicit increment with an FFT / dense coupling: the field F_a (r_a - h_a at the neurons,
        from the coupling operator) is the atom row 0 with weight 1, so the kernel adds sqrt(n) F_a to
        the input exactly as the NumPy path does (solvers.particle_steps.SchemeStep.increment)."""
        sdt = math.sqrt(dt)
        w = np.zeros(self.kern.NR)
        w[0] = 1.0
        for a in range(self.P):
            np.copyto(self.U[a][0], np.broadcast_to(fields[a], self.U[a][0].shape))
            draw = self.noise is None
            if not draw:
                self.noise(step, self.cm.populations[a], dt, self.dW[a])
            self.explicit[a](X[a], *self.pos[a], self.U[a], w, 0.0, self.cin[a], self.cstride[a], t, dt,
                             sdt, self.sq, self.dW[a], draw, self.k0, self.k1, a, step, self.GP[a], False,
                             self.milstein, self.prm, self.apart[a])

    def finish_pass(self, X, dz, t: float, dt: float, store_g: bool, slopes: bool) -> list:
        """The exponential correction (dz not None), then gains, slopes (if asked) and their moments
        (self.mu, self.S); returns per population sum_j sum_i x_ij (finite unless the run blew up)."""
        K, L = self.K, self.L
        sums_x = []
        dts = dt * self.sq
        for a in range(self.P):
            if dz is not None:
                w, shift = self._weights(a, dz[a * K:(a + 1) * K])
            else:
                w, shift = np.zeros(self.kern.NR), 0.0
            self.finish[a](X[a], *self.pos[a], self.U[a], w, shift, dts, dz is not None, t, self.G[a],
                           store_g, self.GP[a], slopes, self.prm, self.mpart[a], self.spart[a], self.xpart[a])
            if self.field_coupling:
                sums_x.append(float(self.xpart[a].sum()))
                continue
            at = self.atoms[a]
            self.mu[a * L:(a + 1) * L] = self._moments(a, self.mpart[a].sum(axis=0))[at.chi_idx]
            if slopes:
                M = self._moments2(a, self.spart[a].sum(axis=0))
                self.S[a * L:(a + 1) * L, a * K:(a + 1) * K] = M[self.coup._ix[a]]
            sums_x.append(float(self.xpart[a].sum()))
        return sums_x


def run_compiled(cm, setup, cstep, guard, rec, n: int, nsteps: int, dt: float, *, scheme: str, seed,
                 noise=None):
    """The time loop of solvers.particles.simulate on the compiled step; updates setup.X, guard and rec
    in place and returns (dt, nsteps) at the end (the guard may have refined the step)."""
    import numba
    cs = CompiledStep(cm, setup, cstep, n, scheme, seed, noise)
    threads = numba.get_num_threads()
    # a parallel region costs a fork and a join of every thread: no more threads than chunks
    numba.set_num_threads(max(1, min(threads, max(p.shape[0] for p in cs.apart))))
    try:
        loop = _field_loop if cs.field_coupling else _loop
        return loop(cm, setup, cstep, guard, rec, cs, n, nsteps, dt)
    finally:
        numba.set_num_threads(threads)


def _loop(cm, setup, cstep, guard, rec, cs, n, nsteps, dt):
    X, pops = setup.X, cm.populations
    B = cstep.coup.B
    exponential = cstep.kind == "exponential"
    sq = math.sqrt(n)
    guard.coup = _SlopeMatrix(B)
    cs.finish_pass(X, None, 0.0, dt, store_g=True, slopes=guard.due(0) or cstep.needs_slopes(0))
    step = 0
    while step < nsteps:
        t = step * dt
        refresh = cstep.needs_slopes(step)
        if guard.due(step):
            k = guard.check(step, t, cs.S, dt)
            if k > 1:                               # refine: the same times, k times more steps
                step, nsteps, dt = step * k, nsteps * k, dt / k
                rec.refine(k)
                refresh = cstep.uses_slopes
        c = B @ cs.mu
        if not np.all(np.isfinite(c)):
            G = [cm.call("gain", p, *X[ia], *setup.pos[ia], t) for ia, p in enumerate(pops)]
            blowup(cm, X, G, t, "the coupling moments")
        if refresh:
            cstep.Phi2 = phi_functions((dt * sq) * (cs.S @ B))[2]
        if step % rec.stride == 0:
            rec.record_states(step // rec.stride, X, cs.G)
        s_vec = cs.explicit_pass(X, c, t, step, dt, collect=exponential)
        dz = B @ (cstep.Phi2 @ s_vec) if exponential else None
        c_eff = c + dz if exponential else c
        rec.observe(step, nsteps, t, dt, X, None, c, c_eff, None, record=False)
        nxt = step + 1
        slopes = nxt < nsteps and (guard.due(nxt) or cstep.needs_slopes(nxt))
        store = nxt < nsteps and nxt % rec.stride == 0
        _finish_checked(cm, cs, X, dz, nxt * dt, dt, store, slopes, exponential)
        step = nxt
    return dt, nsteps, cs


def _finish_checked(cm, cs, X, dz, t_next, dt, store, slopes, implicit):
    """The finish pass at t_next, then the finiteness of every population's states (blow-up report)."""
    for ia, v in enumerate(cs.finish_pass(X, dz, t_next, dt, store_g=store, slopes=slopes)):
        if not math.isfinite(v):
            blowup(cm, X, None, t_next, "the states", pop=cm.populations[ia], implicit=implicit)


def _field_loop(cm, setup, cstep, guard, rec, cs, n, nsteps, dt):
    """The time loop with an FFT or dense coupling (explicit coupling step, as the NumPy path): per
    step the coupling operator's fields of the gains at the start of the step (NumPy), then the
    explicit pass and the gains (and slopes when the step audit is due) of the new states."""
    X = setup.X
    cs.finish_pass(X, None, 0.0, dt, store_g=True, slopes=guard.due(0))
    step = 0
    while step < nsteps:
        t = step * dt
        if guard.due(step):
            k = guard.check(step, t, cs.GP, dt)
            if k > 1:                               # refine: the same times, k times more steps
                step, nsteps, dt = step * k, nsteps * k, dt / k
                rec.refine(k)
        cstep.start(cs.G)
        fields = cstep.fields
        if not all(np.all(np.isfinite(f)) for f in fields):
            blowup(cm, X, cs.G, t, "the coupling fields")
        rec.observe(step, nsteps, t, dt, X, cs.G, None, None, fields)
        cs.field_explicit_pass(X, fields, t, step, dt)
        nxt = step + 1
        slopes = nxt < nsteps and guard.due(nxt)
        _finish_checked(cm, cs, X, None, nxt * dt, dt, True, slopes, False)
        step = nxt
    return dt, nsteps, cs


class BackendFallback(UserWarning):
    """A run large enough for the compiled step runs on the NumPy path (the message says why)."""


def compiled_unavailable(cm, cstep) -> str | None:
    """Why the compiled step cannot run this model with this coupling (None when it can)."""
    from .particle_numba import numba_missing
    if getattr(cm.module, "NUMBA_SOURCE", None) is None:
        why = getattr(cm.module, "NUMBA_UNSUPPORTED", "") or (
            "its generated module predates the compiled step; regenerate it with  balkin generate")
        return f"model {cm.name!r} has no compiled particle step: {why}"
    missing = numba_missing()
    if missing is None and cstep.coup.kind != "lowrank" and load_step(cm.module).NR < 1:
        return (f"model {cm.name!r}: its compiled step has no coupling row to carry the {cstep.coup.kind} "
                f"coupling's field (a model without space); the NumPy path runs it")
    return missing


def choose_backend(backend, cm, cstep, neuron_steps: int) -> tuple[str, str]:
    """('numba' | 'numpy', why): backend 'numpy' or 'numba' as asked ('numba' raises
    CompiledStepUnavailable where it does not apply), None: 'numba' for runs of at least
    AUTO_NEURON_STEPS neuron-steps where it applies, else 'numpy'."""
    import warnings
    from .particle_numba import CompiledStepUnavailable
    if backend not in (None, "numpy", "numba"):
        raise ValueError(f"backend must be 'numba', 'numpy' or None (automatic), got {backend!r}")
    if backend == "numpy":
        return "numpy", "asked for"
    why = compiled_unavailable(cm, cstep)
    if why is not None:
        if backend == "numba":
            raise CompiledStepUnavailable(f"backend 'numba' is not available: {why}; use backend 'numpy'")
        if neuron_steps >= AUTO_NEURON_STEPS:
            warnings.warn(f"model {cm.name!r}: the particles run on the NumPy path: {why}", BackendFallback,
                          stacklevel=3)
        return "numpy", why
    if backend is None and neuron_steps < AUTO_NEURON_STEPS:
        return "numpy", f"a small run ({neuron_steps} < {AUTO_NEURON_STEPS} neuron-steps)"
    return "numba", ""
