"""Stability at the tested sizes, and the unstable regime, for `balkin verify` (DESIGN.md §4b).

At network size n the imbalance of the finite-n McKean–Vlasov equation evolves, linearised about its
stationary state, with the finite-n fast matrix  diag(<f'>) + sqrt(n) W D  on Range(W)
(solvers.lattice_coupling.LatticeCoupling.fast_spectrum with n): rates Re(nu) and angular
frequencies Im(nu) for its eigenvalues nu.  A size with Re(nu) >= 0 is not a stationary balanced
network: comparing stationary means there is meaningless, so verify fails it, naming the size and
the eigenvalue, unless asked to test the unstable regime.

Unstable regime (``oscillation_check``).  Two particle runs share their Brownian paths and their
initial states, drawn from the finite-n stationary density (inverse CDF on the stationary solver's
grid, per lattice position); in one of them the states of the input component are shifted by
delta * Re(psi(theta) . v_a), v the eigenvector of the leading eigenvalue nu (coefficients on
span{psi_k e_a}), normalised so that the largest shift is delta.  The difference of their bin means,
projected on the shift pattern, is the linear response  e^{r t} (a cos w t + b sin w t)  (for a
real nu: a e^{r t}), fitted per seed over the time in which it grows by e^2 (at most 50 periods), cut where the base run's own
amplitude along the mode (grown from the network's noise) exceeds LINEAR_FRACTION of the stationary
standard deviation: beyond that the linearisation does not describe the particles.  Fewer than one
period inside the linear regime (small n: large noise) fails the check as untestable at that size.  The check passes when the
seed-mean frequency is within 5 % of Im(nu) and the seed-mean growth rate within 3 standard errors
(over seeds) of Re(nu), plus the exponential step's own growth bias |<f'>| theta^2 / 6,
theta = dt Im(nu) (solvers.particles).
"""
from __future__ import annotations

import math

import numpy as np

FREQ_TOL = 0.05            # relative frequency tolerance of the unstable-regime check
RATE_SE = 3.0              # growth tolerance in standard errors over seeds (plus the step's own bias)
LINEAR_FRACTION = 1.0      # the fit stops where the base run's mode amplitude exceeds this fraction of sd


def finite_n_stability(cm, sizes, npos: int | None) -> dict:
    """Per size n: {'state': finite-n StationaryResult, 'eigenvalues': finite-n fast eigenvalues,
    'leading': the one with the largest real part, 'stable': Re(leading) < 0}; where the stationary
    solver finds no state (other than an infeasible balance, which is raised) the entry has
    'undetermined': the reason, and counts as stable (the particle comparison still runs)."""
    from .balance_errors import InfeasibleBalance, StationaryError
    from .stationary import solve_finite_n
    out = {}
    for n in sizes:
        try:
            st = solve_finite_n(cm, n, npos=npos, check_stability=False)
        except InfeasibleBalance:
            raise
        except StationaryError as exc:      # no stationary state found: stability not determined
            out[n] = {"state": None, "eigenvalues": np.zeros(0, complex), "leading": None, "stable": True,
                      "undetermined": str(exc)}
            continue
        w = np.asarray(st.finite_n_eigenvalues)
        lead = complex(w[np.argmax(w.real)]) if w.size else None
        out[n] = {"state": st, "eigenvalues": w, "leading": lead,
                  "stable": lead is None or lead.real < 0}
    return out


def _leading_vector(st, n):
    """The leading eigenvalue of the finite-n fast matrix diag(<f'>) + sqrt(n) W D on Range(W) at the
    state st, and its eigenvector as coefficients (P, K) on span{psi_k e_a}
    (LatticeCoupling.fast_modes: solvers.fast_spectrum, J averaged over positions)."""
    from .lattice_coupling import LatticeCoupling
    cpl = LatticeCoupling(st.model, st.npos)
    w, X = cpl.fast_modes(st.slope, n=n, J=st.drift_slope)
    k = int(np.argmax(w.real))
    return complex(w[k]), X[:, k].reshape(cpl.P, cpl.K)


def _draw_cells(rng, dens, idx):
    """For neurons at lattice positions idx: cells drawn by inverse CDF from the rows dens (N, cells)
    (one uniform number per neuron, drawn in neuron order)."""
    cdf = np.cumsum(np.maximum(dens, 0.0), axis=1)
    cdf /= cdf[:, -1:]
    u = rng.uniform(size=idx.size)
    cell = np.empty(idx.size, dtype=np.intp)
    for k in np.unique(idx):
        sel = idx == k
        cell[sel] = np.searchsorted(cdf[k], u[sel])
    return np.minimum(cell, dens.shape[1] - 1)


def _lattice_index(cm, pos, npos, n_a):
    """The lattice position (bin) of each neuron: solvers.coupling.bin_index, 0 without space."""
    if cm.pos_dim == 0:
        return np.zeros(n_a, dtype=np.intp)
    from .coupling import bin_index
    return bin_index(pos, npos, cm.pos_dim)


def _sampler(st):
    """init callable for simulate: states drawn from the stationary density at the nearest lattice
    position (inverse CDF on the cell grid, uniform within a cell)."""
    cm = st.model

    def init(rng, pop, m, n_a, pos):
        g = st.grids[pop]
        cell = _draw_cells(rng, st.densities[pop], _lattice_index(cm, pos, round(st.npos), n_a))
        out = np.zeros((m, n_a))
        out[cm.e] = g.lo + g.h * (cell + rng.uniform(size=n_a))
        return out
    return init


class State2D:
    """An m = 2 stationary state (solvers.stationary2d.StationaryResult2D) as oscillation_check reads
    it: the lattice per angle ``npos``, the fast-matrix coefficients ``slope`` and ``drift_slope``
    (P, N), the input component's ``mean`` and ``variance`` (P, N), and ``sampler()``: states (both
    components) drawn from the 2-D density at the nearest lattice position (inverse CDF over the
    cells, uniform within a cell)."""

    def __init__(self, st):
        cm = st.model
        self.model, self.st = cm, st
        N = st.density.shape[1]
        self.npos = round(N ** (1.0 / cm.pos_dim)) if cm.pos_dim else 1
        self.slope, self.drift_slope = st.slope, st.drift_slope
        self.mean = st.state_mean[..., cm.e]
        self.variance = st.state_cov[..., cm.e, cm.e]

    def sampler(self):
        st, cm, side = self.st, self.model, self.npos

        def init(rng, pop, m, n_a, pos):
            ia = cm.populations.index(pop)
            x1, x2 = (np.asarray(v, float) for v in st.x[ia])
            dens = st.density[ia]                                 # (N, n1, n2)
            cell = _draw_cells(rng, dens.reshape(dens.shape[0], -1), _lattice_index(cm, pos, side, n_a))
            i, j = np.unravel_index(cell, dens.shape[1:])
            out = np.zeros((m, n_a))
            out[0] = x1[i] + (x1[1] - x1[0]) * (rng.uniform(size=n_a) - 0.5)
            out[1] = x2[j] + (x2[1] - x2[0]) * (rng.uniform(size=n_a) - 0.5)
            return out
        return init


def _pattern(cm, V, pos):
    """Re(psi(theta) . v_a) per population at positions pos: (P, len) (a constant on a point)."""
    npts = len(pos[0]) if pos else 1
    if cm.K == 0:
        return np.zeros((cm.P, npts))
    psi = np.array([np.broadcast_to(np.asarray(v, float), (npts,)) for v in cm.module.psi(*pos, **cm.params)])
    return np.real(V @ psi)


def oscillation_check(cm, n, st, dt: float, seeds: int, *, delta: float = 0.01, T: float | None = None) -> dict:
    """Measured growth rate and angular frequency of the leading unstable mode at size n against
    the finite-n fast eigenvalue (see the module docstring).  Returns a dict with 'predicted',
    'rates', 'frequencies', 'rate', 'rate_se', 'frequency', 'passed', 'message'."""
    from scipy.optimize import curve_fit

    from .particles import simulate
    nu, V = _leading_vector(st, n)
    if T is None:                                   # T: given (a decaying mode, solvers.sweep_particles), or
        grow = 2.0 / max(nu.real, 1e-3)             # the time to grow by e^2, at most 50 periods
        T = grow if abs(nu.imag) < 1e-9 else min(grow, 50 * 2 * math.pi / abs(nu.imag))
    T = max(50, int(round(T / dt))) * dt
    J = float(np.max(np.abs(np.asarray(st.drift_slope, float))))
    nb = st.npos if cm.pos_dim else None
    fine = cm.grid(64) if cm.pos_dim else ()
    scale = delta / max(float(np.max(np.abs(_pattern(cm, V, fine)))), 1e-300)
    base_init = st.sampler() if hasattr(st, "sampler") else _sampler(st)

    def kicked(rng, pop, m, n_a, pos):
        x = base_init(rng, pop, m, n_a, pos)
        x[cm.e] += scale * _pattern(cm, V, pos)[cm.populations.index(pop)]
        return x

    def model(tt, r, om, a, b):
        return np.exp(r * tt) * (a * np.cos(om * tt) + b * np.sin(om * tt))

    # the linear regime: the base run's own amplitude along the mode (it grows from the network's
    # noise) must stay below LINEAR_FRACTION of the stationary standard deviation
    sd = math.sqrt(float(np.min(st.variance)))
    mean0 = np.asarray(st.mean, float)                          # (P, N) on the solver lattice
    rates, freqs, windows = [], [], []
    for seed in range(1, seeds + 1):
        runs = [simulate(cm, n, T, dt, seed=seed, init=init, record_every=dt, nbins=nb, dt_guard="refuse")
                for init in (base_init, kicked)]
        w = _pattern(cm, V, runs[0].bin_positions)              # (P, bins): project on the shift
        wn = w / max(float(np.sum(w * w)), 1e-300)
        y = np.tensordot(runs[1].mean - runs[0].mean, w, axes=([1, 2], [0, 1]))
        ref = mean0 if not cm.pos_dim else mean0[:, :: max(1, mean0.shape[1] // w.shape[1])][:, :w.shape[1]]
        amp = np.abs(np.tensordot(runs[0].mean - ref[None], wn, axes=([1, 2], [0, 1])))
        out = np.flatnonzero(np.maximum.accumulate(amp) > LINEAR_FRACTION * sd)
        t = runs[0].times
        stop = len(t) if out.size == 0 else max(int(out[0]), 1)
        windows.append(float(t[stop - 1]))
        t, y = t[:stop], y[:stop]
        crossings = np.count_nonzero(np.diff(np.sign(y)) != 0)
        p = [np.nan, np.nan]
        if stop >= 20 and (abs(nu.imag) < 1e-9 or t[-1] * abs(nu.imag) >= 2 * math.pi):
            real = abs(nu.imag) < 1e-9              # a real mode: e^{r t} a (the oscillatory fit is degenerate)
            p0 = [0.0, y[0]] if real else [0.0, math.pi * crossings / t[-1], y[0], 0.0]
            try:
                fit, _ = curve_fit((lambda tt, r, a: a * np.exp(r * tt)) if real else model, t, y, p0=p0, maxfev=20000)
                if not np.array_equal(np.asarray(fit, float), np.asarray(p0, float)):   # else: it did not move
                    p = [fit[0], 0.0] if real else fit
            except RuntimeError:
                pass
        rates.append(float(p[0]))
        freqs.append(abs(float(p[1])))
    rates, freqs = np.array(rates), np.array(freqs)
    if not np.all(np.isfinite(rates)):
        msg = (f"n = {n}: unstable fast mode nu = {nu.real:.4g}{nu.imag:+.4g}i; the particles leave the linear "
               f"regime (own amplitude along the mode > {LINEAR_FRACTION:g} sd = {LINEAR_FRACTION * sd:.3g}) after "
               f"t = {min(windows):.3g}, less than one period, or the fit did not converge: the linear prediction cannot be tested at this "
               f"size (the network's noise is too large); test larger n")
        return {"predicted": [nu.real, nu.imag], "rates": rates, "frequencies": freqs, "rate": math.nan,
                "rate_se": math.nan, "frequency": math.nan, "passed": False, "message": msg, "T": T, "dt": dt,
                "windows": windows}
    rate, freq = float(np.mean(rates)), float(np.mean(freqs))
    se = float(np.std(rates, ddof=1) / math.sqrt(len(rates))) if len(rates) > 1 else math.inf
    tol_r = RATE_SE * se + J * (dt * nu.imag) ** 2 / 6
    f_ok = abs(nu.imag) < 1e-9 or abs(freq / abs(nu.imag) - 1) <= FREQ_TOL
    r_ok = bool(np.isfinite(rate)) and abs(rate - nu.real) <= tol_r
    msg = (f"n = {n}: unstable fast mode nu = {nu.real:.4g}{nu.imag:+.4g}i; particles (linear response to a "
           f"shift along its eigenvector, {len(rates)} seeds, dt = {dt:g}, fitted over t in [0, {min(windows):.3g}..{max(windows):.3g}]): growth {rate:.4g} "
           f"+- {se:.2g} (tolerance {tol_r:.2g}: {'ok' if r_ok else 'MISS'}), angular frequency {freq:.4g} "
           f"(predicted {abs(nu.imag):.4g}, tolerance {FREQ_TOL:.0%}: {'ok' if f_ok else 'MISS'})")
    return {"predicted": [nu.real, nu.imag], "rates": rates, "frequencies": freqs, "rate": rate, "rate_se": se,
            "frequency": freq, "passed": bool(f_ok and r_ok), "message": msg, "T": T, "dt": dt,
            "windows": windows}
