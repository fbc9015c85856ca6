"""The records of a particle run (solvers.particles.simulate).

Every ``stride`` steps (record r at t_r = r stride dt, the start of a record interval), per population
a and position bin B (n_B neurons):

    mean_r[a, B] = (1/n_B) sum_{j in B} x_{j,e},   var_r[a, B] = max(0, (1/n_B) sum x_{j,e}^2 - mean^2),
    gbar_r[a, B] = (1/n_B) sum_{j in B} g_a(x_j),

and lambda at the bin centres theta_B averaged over the steps of the interval,

    lam_r[a, B] = sqrt(n) ( sum_k dt_k [r_a(theta_B, t_k) - h_a(theta_B, t_k)] / sum_k dt_k + <h_a(theta_B)> ),

with r_a - h_a from the coupling: 'lowrank' (psi(theta_B) . (time average of the applied
coefficients c_eff; lam_state: of c at the start of each step)), 'centres' (FFT / dense: the fields at
neurons sitting on the bin centres), 'sample' (FFT / dense without such neurons: direct summation at
the start of the interval only, solvers.coupling.field_at).  No SymPy, no printing.
"""
from __future__ import annotations

import math

import numpy as np

from .coupling import field_at


def record_stride(nsteps: int, dt: float, record_every) -> int:
    """Steps between records: round(record_every / dt) (at least 1); by default every step up to
    200 steps, else every max(10, ceil(nsteps / 10000)) steps."""
    if record_every is None:
        return 1 if nsteps <= 200 else max(10, int(math.ceil(nsteps / 10000)))
    return max(1, int(round(float(record_every) / dt)))


def centre_indices(cm, sizes, nb: int, positions: str, lowrank: bool) -> list:
    """Per population the indices of the lattice neurons sitting on the bin centres (None where
    there are none, or for a low-rank coupling, which evaluates psi at the centres directly)."""
    centre_idx = [None] * cm.P
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
    return centre_idx


class Recorder:
    """The records of one run (see the module docstring).

    Arrays (nrec, P, nbt): mean, var, gbar, lam, lam_state; times (nrec,).  ``observe`` is called
    once per step, after the coupling step is known and before the states are updated; ``refine(k)``
    after the step was divided by k (the records keep their times).
    """

    def __init__(self, cm, setup, n: int, nsteps: int, dt: float, record_every, *, lowrank: bool,
                 positions: str, static_in, h_centres, drive):
        s = setup
        self.cm, self.sizes, self.bins, self.counts = cm, s.sizes, s.bins, s.counts
        self.pos, self.bpos, self.nbt, self.e, self.P = s.pos, s.bpos, s.nbt, cm.e, cm.P
        self.sq = math.sqrt(n)
        self.K = K = cm.K
        self.static_in, self.h_centres, self.drive, self.prm = static_in, h_centres, drive, cm.params
        self.centre_idx = centre_indices(cm, s.sizes, s.nb, positions, lowrank)
        self.psi_c = None
        if lowrank:
            self.psi_c = np.empty((K, s.nbt))
            vals = cm.module.psi(*s.bpos, **cm.params) if K else ()
            for k, v in enumerate(vals):
                self.psi_c[k] = v
        self.stride = record_stride(nsteps, dt, record_every)
        nrec = (nsteps - 1) // self.stride + 1
        P, nbt = self.P, s.nbt
        self.times = np.arange(nrec) * (self.stride * dt)
        self.mean = np.empty((nrec, P, nbt))
        self.var = np.empty((nrec, P, nbt))
        self.gbar = np.empty((nrec, P, nbt))
        self.lam = np.empty((nrec, P, nbt))
        self.lam_state = np.empty((nrec, P, nbt))
        if lowrank:
            self.lam_mode = "lowrank"
        elif all(ci is not None for ci in self.centre_idx):
            self.lam_mode = "centres"
        else:
            self.lam_mode = "sample"
        self.c_acc = np.zeros(P * K)
        self.cs_acc = np.zeros(P * K)
        self.f_acc = np.zeros((P, nbt))
        self.h_acc = np.zeros((P, nbt))
        self.dynamic_h = [ia for ia in range(P) if not static_in[ia]]
        self.w_acc = 0.0                          # time accumulated in the current record interval

    def refine(self, k: int) -> None:
        """The step was divided by k: k times more steps between records."""
        self.stride *= k

    def record_states(self, r: int, X, G) -> None:
        """Record r: binned mean and variance of component e and mean gain of the states X, gains G."""
        e, sizes, nbt = self.e, self.sizes, self.nbt
        for ia in range(self.P):
            xe = X[ia][e]
            g = G[ia]
            if self.bins[ia] is None:
                mx = float(xe.sum()) / sizes[ia]
                self.mean[r, ia] = mx
                self.var[r, ia] = max(0.0, float(np.dot(xe, xe)) / sizes[ia] - mx * mx)
                self.gbar[r, ia] = float(np.broadcast_to(g, (sizes[ia],)).sum()) / sizes[ia]
            else:
                cnt, b = self.counts[ia], self.bins[ia]
                mx = np.bincount(b, weights=xe, minlength=nbt) / cnt
                self.mean[r, ia] = mx
                self.var[r, ia] = np.maximum(np.bincount(b, weights=xe * xe, minlength=nbt) / cnt - mx * mx, 0.0)
                self.gbar[r, ia] = np.bincount(b, weights=np.broadcast_to(g, (sizes[ia],)), minlength=nbt) / cnt

    def observe(self, step: int, nsteps: int, t: float, dt: float, X, G, c, c_eff, fields,
                record: bool = True) -> None:
        """One step: the states at the start of a record interval; the coupling applied in the step
        (c_eff and c for low rank, the fields for FFT / dense) and the drive, weighted by dt; at the
        end of an interval, lam and lam_state of its record.  record=False: the caller recorded the
        states itself (record_states, before it updated them in place: the compiled step)."""
        stride, P = self.stride, self.P
        if record and step % stride == 0:
            self.record_states(step // stride, X, G)
            if self.lam_mode == "sample":
                self.f_acc[:] = field_at(self.cm, self.bpos, self.pos, self.sizes, G)
        if self.lam_mode == "lowrank":
            self.c_acc += dt * c_eff
            self.cs_acc += dt * c
        elif self.lam_mode == "centres":
            for ia in range(P):
                self.f_acc[ia] += dt * np.broadcast_to(fields[ia], (self.sizes[ia],))[self.centre_idx[ia]]
        for ia in self.dynamic_h:
            self.h_acc[ia] += dt * np.broadcast_to(np.asarray(self.drive[ia](*self.bpos, t, **self.prm), float),
                                                   (self.nbt,))
        self.w_acc += dt
        if step % stride == stride - 1 or step == nsteps - 1:
            self.close_interval(step // stride)

    def close_interval(self, r: int) -> None:
        """lam and lam_state of record r from the accumulated coupling and drive; resets the sums."""
        P, K, w_acc, nbt = self.P, self.K, self.w_acc, self.nbt
        if self.lam_mode == "lowrank":
            fc = (self.c_acc.reshape(P, K) @ self.psi_c) / w_acc if K else np.zeros((P, nbt))
            fs = (self.cs_acc.reshape(P, K) @ self.psi_c) / w_acc if K else np.zeros((P, nbt))
            self.c_acc[:] = 0.0
            self.cs_acc[:] = 0.0
        elif self.lam_mode == "centres":
            fc = fs = self.f_acc / w_acc
        else:
            fc = fs = self.f_acc
        for ia in range(P):
            hc = self.h_centres[ia] if self.static_in[ia] else self.h_acc[ia] / w_acc
            self.lam[r, ia] = self.sq * (fc[ia] + hc)
            self.lam_state[r, ia] = self.sq * (fs[ia] + hc)
        self.f_acc[:] = 0.0
        self.h_acc[:] = 0.0
        self.w_acc = 0.0
