"""The intrinsic part of one particle step (solvers.particles.simulate): Euler–Maruyama or Milstein.

For population a, with dW ~ N(0, dt I_q) and F_j = r_a(theta_j) - h_a(theta_j) the coupling at the
neurons (supplied by the coupling step, solvers.particle_coupling), the increment is

    dx_j = sigma(x_j) dW_j                                                   (diffusion_increment)
         + 1/2 sum_{k,l} M[i][k][l] (dW_k dW_l - delta_kl dt)        (Milstein only: milstein_increment)
         + dt [ f(x_j) + ( u_a + sqrt(n) (F_j + h_a) ) e ]

with the generated Milstein tensor M[i][k][l] = sum_p sigma_pk d_p sigma_il.  Autonomous additive
noise (sigma, M independent of x and t) and static inputs u + sqrt(n) h are evaluated once.  The
exponential coupling correction is added by the coupling step; this module knows nothing of it, so a
compiled step can replace SchemeStep.increment alone.  No SymPy, no printing.
"""
from __future__ import annotations

import numpy as np


def state_or_time(cm, kind, pop) -> bool:
    """kind_pop (generated) depends on the state or on t: known from the generated USES."""
    return cm.state_dependent(kind, pop) or "t" in cm.uses(kind, pop)


def compact(v, n: int):
    """A per-neuron array as a number when it is constant (saves memory and work), else (n,) array."""
    a = np.asarray(v, float)
    if a.ndim == 0:
        return float(a)
    a = np.broadcast_to(a, (n,))
    if a.strides == (0,) or np.all(a == a[0]):
        return float(a[0])
    return np.ascontiguousarray(a)


def scalar_view(v):
    """A generated output that is a broadcast constant (all strides 0) as a float, else None."""
    if isinstance(v, (float, int)):
        return float(v)
    a = np.asarray(v)
    if a.ndim == 0 or all(s == 0 for s in a.strides):
        return float(a.flat[0])
    return None


def brownian_increments(rng, sdt: float, out) -> None:
    """dW ~ N(0, dt I): fill out (q, n_a) with standard normals from rng, times sqrt(dt)."""
    rng.standard_normal(out=out)
    out *= sdt


def diffusion_increment(sig, dW, out) -> None:
    """out_i = sum_k sigma_ik dW_k (out (m, n_a), dW (q, n_a); sig[i][k] a number or an array)."""
    for i in range(out.shape[0]):
        for k in range(dW.shape[0]):
            sv = scalar_view(sig[i][k])
            if k == 0:
                np.multiply(dW[0], sig[i][0] if sv is None else sv, out=out[i])
            else:
                out[i] += (sig[i][k] if sv is None else sv) * dW[k]


def milstein_increment(Mt, dW, dt: float, out) -> None:
    """out_i += 1/2 sum_{k,l} M[i][k][l] (dW_k dW_l - delta_kl dt)."""
    q = dW.shape[0]
    for i in range(out.shape[0]):
        for j in range(q):
            for k in range(q):
                prod = dW[j] * dW[k]
                if j == k:
                    prod -= dt
                prod *= Mt[i][j][k]
                prod *= 0.5
                out[i] += prod


def static_inputs(cm, fn, pos, sizes, bpos, nbt: int, sq: float):
    """The time-independent inputs: per population static (bool: u and h do not depend on t),
    u + sqrt(n) h at the neurons (compact) and h at the bin centres (nbt,), None where not static."""
    prm = cm.params
    static_in, const_in, h_centres = [], [], []
    for ia, pop in enumerate(cm.populations):
        st = "t" not in cm.uses("input", pop) and not cm.drive_time_dependent(pop)
        static_in.append(st)
        if st:
            with np.errstate(all="ignore"):       # checked just below
                u = np.broadcast_to(np.asarray(fn["input"][ia](*pos[ia], 0.0, **prm), float), (sizes[ia],))
                h = np.broadcast_to(np.asarray(fn["drive"][ia](*pos[ia], 0.0, **prm), float), (sizes[ia],))
                hc = np.broadcast_to(np.asarray(fn["drive"][ia](*bpos, 0.0, **prm), float), (nbt,)).copy()
                tot = u + sq * h
            if not (np.all(np.isfinite(tot)) and np.all(np.isfinite(hc))):
                raise ValueError(f"model {cm.name!r}: the input u or the drive h of population {pop!r} is not "
                                 f"finite at some neuron position")
            const_in.append(compact(tot, sizes[ia]))
            h_centres.append(hc)
        else:
            const_in.append(None)
            h_centres.append(None)
    return static_in, const_in, h_centres


class SchemeStep:
    """The Euler–Maruyama (scheme 'euler') or Milstein ('milstein') increment of the intrinsic
    dynamics and the inputs, per population (see the module docstring).

    Attributes: dX (per population (m, n_a), the increment of the current step), dW ((q, n_a), its
    Brownian increments), F ((n_a,) work buffer: the coupling in, dt (f_e + u + sqrt(n) r) out),
    static_in / const_in / h_centres (static_inputs), static_sig / static_mil (sigma and M evaluated
    once for autonomous additive noise; static_mil 'zero' when M vanishes).
    """

    def __init__(self, cm, fn, pos, sizes, bpos, nbt: int, sq: float, scheme: str, rng, noise=None):
        self.cm, self.fn, self.pos, self.sizes, self.sq = cm, fn, pos, sizes, sq
        self.prm = cm.params
        self.rng, self.noise = rng, noise
        self.milstein = scheme == "milstein"
        self.pops, self.m, self.e = cm.populations, cm.m, cm.e
        self.q = q = [int(cm.module.NOISE_DIM[p]) for p in cm.populations]
        self.static_in, self.const_in, self.h_centres = static_inputs(cm, fn, pos, sizes, bpos, nbt, sq)
        self.static_sig, self.static_mil = [], []
        m, prm = self.m, self.prm
        for ia, pop in enumerate(self.pops):
            if not state_or_time(cm, "diffusion", pop):
                zero = [np.zeros(sizes[ia])] * m
                sig = fn["diffusion"][ia](*zero, *pos[ia], 0.0, **prm)
                self.static_sig.append([[compact(sig[i][k], sizes[ia]) for k in range(q[ia])] for i in range(m)])
            else:
                self.static_sig.append(None)
            mil = None
            if self.milstein and not state_or_time(cm, "milstein", pop):
                zero = [np.zeros(sizes[ia])] * m
                Mt = fn["milstein"][ia](*zero, *pos[ia], 0.0, **prm)
                mil = [[[compact(Mt[i][j][k], sizes[ia]) for k in range(q[ia])] for j in range(q[ia])]
                       for i in range(m)]
                if all(isinstance(v, float) and v == 0.0 for a_ in mil for b_ in a_ for v in b_):
                    mil = "zero"
            self.static_mil.append(mil)
        self.dX = [np.empty((m, s)) for s in sizes]
        self.dW = [np.empty((qa, s)) for qa, s in zip(q, sizes)]
        self.F = [np.empty(s) for s in sizes]

    def increment(self, ia: int, x, t: float, step: int, dt: float, sdt: float, F):
        """dX[ia] = sigma dW (+ Milstein) + dt (f + (u + sqrt(n) (F + h)) e) for population ia at
        states x (tuple of m arrays), time t; F (n_a,) holds the coupling r_a - h_a on entry and is
        overwritten.  Draws dW from the Generator (or noise(step, pop, dt, out)).  Returns dX[ia]."""
        fn, prm, pos, e = self.fn, self.prm, self.pos[ia], self.e
        dxa, dwa = self.dX[ia], self.dW[ia]
        if self.noise is None:
            brownian_increments(self.rng, sdt, dwa)
        else:
            self.noise(step, self.pops[ia], dt, dwa)
        sig = self.static_sig[ia]
        if sig is None:
            sig = fn["diffusion"][ia](*x, *pos, t, **prm)
        diffusion_increment(sig, dwa, dxa)
        if self.milstein and self.static_mil[ia] != "zero":
            Mt = self.static_mil[ia]
            if Mt is None:
                Mt = fn["milstein"][ia](*x, *pos, t, **prm)
            milstein_increment(Mt, dwa, dt, dxa)
        # drift and input:  dt (f + u + sqrt(n) r)
        f = fn["drift"][ia](*x, *pos, t, **prm)
        sq = self.sq
        F *= sq
        if self.static_in[ia]:
            F += self.const_in[ia]
        else:
            F += fn["input"][ia](*pos, t, **prm)
            F += sq * np.asarray(fn["drive"][ia](*pos, t, **prm), float)
        F += f[e]
        F *= dt
        dxa[e] += F
        for i in range(self.m):
            if i != e:
                dxa[i] += dt * np.asarray(f[i])
        return dxa

