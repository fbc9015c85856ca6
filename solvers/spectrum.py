"""Spectra of a stationary balanced state (DESIGN.md §2 and §5): which ring modes grow.

Fast spectrum.  Off the manifold the imbalance relaxes at rate sqrt(n) through q -> W (D q) on
Range(W), D = dG/dm (the population mean gain slope) at the stationary state.  On the lattice, with U
an orthonormal basis of Range(W) (solvers.lattice_coupling.range_basis, or the same subspace from
FieldSolver), the coupled fast matrix is  M = U^T W diag(D) U  (r x r; solvers.fast_spectrum, the one
fast-spectrum implementation, which the stationary, kinetic, field and particle solvers also use).
Its eigenvalues mu give, at network size n, rates sqrt(n) Re mu and angular frequencies sqrt(n) Im mu.  Per Fourier mode
(module.MODES groups the psi atoms; E_g is an orthonormal lattice basis of the atoms of mode g) the
block with the theta-averaged slopes Dbar is  U_g^T W_g diag(Dbar) U_g,  W_g = (I_P x E_g)^T W (I_P x E_g),
U_g = range_basis(W_g): exact when the stationary state is homogeneous, otherwise the modes couple
and the coupled eigenvalues are assigned to the mode that holds most of their eigenvector
(solvers.fast_spectrum.assign_modes, which also groups the slow eigenvalues).

Slow spectrum (neural field, m-equation with C held at its stationary value).  The field is the DAE
m' = A m + b + lambda e, 0 = W G(m, C) + h.  Differentiating the constraint, U^T W D S m' = 0 (S selects
the gain's component g, E embeds lambda into component e), eliminates lambda:
    lambda = -U (U^T W D S E U)^-1 U^T W D S (A m + b),   so   m' = (I - Pi)(A m + b),
    Pi = E U (U^T W D S E U)^-1 U^T W D S         (the oblique projection along the lambda directions),
and the linearisation at the stationary state is  J = (I - Pi) A  (the derivative of Pi drops out
because Pi E U = E U).  J maps into the tangent space T = ker(U^T W D S) of the manifold and vanishes
on the r lambda directions; the slow spectrum is that of J on T:  J_T = V^T J V,  V an orthonormal
basis of T.  Per mode it is computed with theta-averaged A and D in the mode's subspace; modes
outside Range(W) have no constraint and no multiplier, so their slow eigenvalues are those of the
averaged A.  The covariance perturbations obey dC' = A dC + dC A^T (decoupled, eigenvalues
a_i + a_j of A), listed separately.

Verdict per mode (from the coupled eigenvalues assigned to it): "unstable" if an eigenvalue has
Re > tol, "marginal" if |Re| <= tol, otherwise "oscillatory" when a fast eigenvalue is complex (damped
fast oscillations of frequency sqrt(n) Im) and "stable" when not; tol = 1e-9 max(1, max |eig|).

For a model that is not linear with additive noise the stationary state comes from the stationary
solver (solvers.stationary.solve_balanced) and only the fast spectrum is computed, unless
closure=True asks for the Gaussian-closure field (labelled an approximation), which has a slow part.

This module never imports SymPy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import fast_spectrum
from .compiled import CompiledModel
from .field import DEFAULT_NPOS, FieldSolver, _as_model
from .lattice_coupling import lattice_range_basis, lattice_W, range_basis
from .output import Record, _clean

OUTSIDE = "outside Range(W)"
REL_TOL = 1e-9

__all__ = ["Spectrum", "ModeSpectrum", "spectrum", "slow_jacobian", "fast_matrix_lattice", 
           "mode_bases"]


@dataclass
class ModeSpectrum:
    """One row of the table: a Fourier mode (module.MODES group, or OUTSIDE for the lattice functions
    outside Range(W)).  fast_block / slow_block: the theta-averaged blocks; fast / slow: the coupled
    eigenvalues assigned to this mode.  verdict: 'stable', 'oscillatory', 'marginal' or 'unstable';
    oscillatory: a fast eigenvalue of the mode is complex."""

    label: str
    fast_block: np.ndarray
    slow_block: np.ndarray | None
    fast: np.ndarray
    slow: np.ndarray | None
    verdict: str
    oscillatory: bool

    def eigenvalues(self) -> np.ndarray:
        parts = [self.fast] + ([self.slow] if self.slow is not None else [])
        return np.concatenate(parts) if parts else np.zeros(0, complex)

    def leading(self):
        """The eigenvalue with the largest real part (fast preferred on ties), or None."""
        w = self.eigenvalues()
        if w.size == 0:
            return None
        return complex(w[np.argmax(w.real)])


@dataclass
class Spectrum(Record):
    """Spectrum of a stationary state.  source: 'field', 'field-gaussian-closure' or
    'stationary-balanced' (the kinetic stationary solver: fast spectrum only).  D (P, N) the gain
    slopes, Dbar (P,) their theta averages; fast (r,) the coupled fast eigenvalues, slow the coupled
    slow ones (None without a field); covariance: the distinct eigenvalues of the covariance
    equation; fast_matrix (r x r) U^T W D U, slow_matrix J_T; modes: the rows."""

    model: CompiledModel
    source: str
    approximation: bool
    npos: int
    pos: tuple
    state: object
    D: np.ndarray
    Dbar: np.ndarray
    fast: np.ndarray
    slow: np.ndarray | None
    covariance: np.ndarray | None
    fast_matrix: np.ndarray
    slow_matrix: np.ndarray | None
    modes: list
    verdict: str
    info: dict = field(default_factory=dict)

    @property
    def populations(self) -> tuple:
        return self.model.populations

    def mode(self, label: str) -> ModeSpectrum:
        for m in self.modes:
            if m.label == label:
                return m
        raise KeyError(f"no mode {label!r}; modes are {[m.label for m in self.modes]}")

    @property
    def unstable_modes(self) -> list:
        return [m.label for m in self.modes if m.verdict in ("unstable", "marginal")]

    @property
    def stable(self) -> bool:
        return not self.unstable_modes

    def to_record(self, n: float | None = None) -> dict:
        """JSON record: per mode the eigenvalues as [re, im] pairs, the verdict and, with n, the
        fast rates and angular frequencies sqrt(n) x eig; the stationary state under "state"."""
        pairs = lambda w: None if w is None else [[float(np.real(v)), float(np.imag(v))] for v in w]  # noqa: E731
        rows = []
        for m in self.modes:
            row = {"mode": m.label, "verdict": m.verdict, "oscillatory": m.oscillatory,
                   "fast": pairs(m.fast), "slow": pairs(m.slow), "fast_theta_averaged": pairs(m.fast_block),
                   "slow_theta_averaged": pairs(m.slow_block)}
            if n is not None:
                s = math.sqrt(n)
                row["fast_scaled"] = pairs(s * m.fast)
                row["fast_rates"] = [float(s * v.real) for v in m.fast]
                row["fast_angular_frequencies"] = [float(s * abs(v.imag)) for v in m.fast]
            rows.append(row)
        rec = {"model": self.model.name, "kind": "spectrum", "source": self.source,
               "approximation": self.approximation, "parameters": dict(self.model.params), "n": n,
               "npos": self.npos, "verdict": self.verdict, "unstable_modes": self.unstable_modes,
               "D_mean": {a: float(self.Dbar[i]) for i, a in enumerate(self.populations)},
               "fast": pairs(self.fast), "slow": pairs(self.slow), "covariance": pairs(self.covariance),
               "modes": rows, **self.info}
        if hasattr(self.state, "to_record"):
            rec["state"] = self.state.to_record()
        return _clean(rec)


# ---------------------------------------------------------------------------------------------
# the matrices
# ---------------------------------------------------------------------------------------------

def mode_bases(model: CompiledModel, pos) -> list:
    """[(label, E_g (N, k_g) orthonormal lattice basis of the psi atoms of mode g)] from the module's
    PSI and MODES (empty for a non-separable kernel)."""
    if not model.separable:
        return []
    psi = model.psi(pos)                                      # (K, N)
    labels = tuple(model.module.PSI)
    out = []
    for grp in model.module.MODES:
        Eg, _ = np.linalg.qr(psi[list(grp)].T)
        out.append((",".join(labels[k] for k in grp), Eg))
    return out


def fast_matrix_lattice(W: np.ndarray, U: np.ndarray, D: np.ndarray) -> np.ndarray:
    """U^T W diag(D) U: the matrix of q -> W (D q) on Range(W) in the basis U (D flattened (P N,));
    solvers.fast_spectrum.compress on the lattice."""
    return fast_spectrum.compress(fast_spectrum.lattice_operator(W, D), U)


def slow_jacobian(A: np.ndarray, W: np.ndarray, U: np.ndarray, D: np.ndarray, e: int, g: int):
    """The slow Jacobian on the manifold's tangent space (module doc).

    A (P, N, m, m) drift matrices, W (P N, P N), U (P N, r), D (P, N) gain slopes, e input component,
    g gain component.  State vectors are ordered (population, position, component).  Returns
    (J_T, V, J): J_T = V^T J V (d x d, d = P N m - r), V (P N m, d) orthonormal basis of
    T = ker(U^T W D S), J = (I - Pi) A (P N m square)."""
    P, N, m = A.shape[:3]
    n = P * N * m
    idx = np.arange(P * N)
    Afull = np.zeros((n, n))
    for k in range(P * N):
        a, i = divmod(k, N)
        Afull[k * m:(k + 1) * m, k * m:(k + 1) * m] = A[a, i]
    Ee = np.zeros((n, P * N))
    Ee[idx * m + e, idx] = 1.0
    R = np.zeros((U.shape[1], n))                              # U^T W D S
    R[:, idx * m + g] = U.T @ W * np.ravel(D)[None, :]
    if U.shape[1] == 0:
        return Afull.copy(), np.eye(n), Afull.copy()
    M = R @ Ee @ U
    Pi = Ee @ U @ np.linalg.solve(M, R)
    J = Afull - Pi @ Afull
    _, s, Vh = np.linalg.svd(R)
    rank = int(np.count_nonzero(s > 1e-12 * max(s.max(), 1e-300)))
    V = Vh[rank:].T
    return V.T @ J @ V, V, J


def _sorted(w):
    return fast_spectrum.sort_eigenvalues(w)


def _verdict(fast, slow, scale):
    w = np.concatenate([fast] + ([slow] if slow is not None else []))
    tol = REL_TOL * scale
    osc = bool(fast.size and np.any(np.abs(fast.imag) > tol))
    if w.size == 0:
        return "stable", osc
    if np.any(w.real > tol):
        return "unstable", bool(np.any((np.abs(w.imag) > tol) & (w.real > tol)))
    if np.any(np.abs(w.real) <= tol):
        return "marginal", osc
    return ("oscillatory" if osc else "stable"), osc


# ---------------------------------------------------------------------------------------------
# the spectrum of a model
# ---------------------------------------------------------------------------------------------

def spectrum(model, *, npos: int | None = None, params=None, closure: bool = False, state=None,
             t: float = 0.0) -> Spectrum:
    """The spectrum around the stationary balanced state of ``model`` on a lattice of ``npos``
    positions per angle.  Linear/additive models (or closure=True): the stationary field
    (solvers.field), fast and slow spectra.  Otherwise: solvers.stationary.solve_balanced
    (check_stability=False), fast spectrum only.  ``state``: a precomputed FieldStationary or
    StationaryResult on the same lattice."""
    cm = _as_model(model, params)
    linear = all(dict(getattr(cm.module, "LINEAR_ADDITIVE", {})).get(a, False) for a in cm.populations)
    npos = DEFAULT_NPOS[cm.space] if npos is None else int(npos)
    if cm.pos_dim == 0:
        npos = 1
    P = cm.P
    if linear or closure:
        fs = FieldSolver(cm, npos=npos, closure=closure)
        st = fs.stationary(t) if state is None else state
        W, U, pos, N = fs.W, fs.U, fs.pos, fs.N
        D = st.slope
        source = fs.kind
        approx = fs.approximation
        e, g, m = fs.e, fs.gc, fs.m
        A = st.A
    else:
        try:
            from .stationary import solve_balanced
        except ImportError as exc:                                  # pragma: no cover
            raise RuntimeError(f"model {cm.name!r} is not linear with additive noise, so its spectrum needs the "
                               f"stationary solver (solvers.stationary), which is not available: {exc}") from exc
        st = solve_balanced(cm, npos=npos, t=t, check_stability=False) if state is None else state
        pos = cm.grid(npos)
        N = cm.n_positions(npos)
        W = lattice_W(cm, pos)
        U = lattice_range_basis(cm, pos, W)
        D = st.slope
        source = st.kind
        approx = False
        A = None
    bases = mode_bases(cm, pos)
    Dbar = np.asarray(D, float).mean(axis=1)
    # coupled fast spectrum
    Mf = fast_matrix_lattice(W, U, D)
    wf, Xf = fast_spectrum.eigensystem(Mf)
    Eg = [E for _, E in bases]
    owner_f = fast_spectrum.assign_modes(wf, U @ Xf, fast_spectrum.lattice_mode_weights(Eg, P, N))
    # coupled slow spectrum
    Js = ws = owner_s = cov = None
    if A is not None:
        Js, V, _ = slow_jacobian(A, W, U, D, e, g)
        ws, Ys = np.linalg.eig(Js) if Js.size else (np.zeros(0, complex), np.zeros((0, 0)))
        owner_s = fast_spectrum.assign_modes(ws, V @ Ys, fast_spectrum.lattice_mode_weights(Eg, P, N, m))
        ev = np.linalg.eigvals(A)                                   # (P, N, m)
        cov = np.unique(np.round((ev[..., :, None] + ev[..., None, :]).ravel(), 12))
    scale = max(1.0, float(np.abs(wf).max()) if wf.size else 0.0,
                float(np.abs(ws).max()) if ws is not None and ws.size else 0.0)
    # theta-averaged blocks and the rows
    rows = []
    labels = [lab for lab, _ in bases] + [OUTSIDE]
    Abar = A.mean(axis=1) if A is not None else None                # (P, m, m)
    for j, label in enumerate(labels):
        if j < len(bases):
            Eg = bases[j][1]
            k = Eg.shape[1]
            Ig = np.kron(np.eye(P), Eg)                             # (P N, P k)
            Wg = Ig.T @ W @ Ig
            Ug = range_basis(Wg)
            Dg = np.repeat(Dbar[:, None], k, axis=1)
            fb = _sorted(fast_spectrum.eigenvalues(fast_spectrum.lattice_operator(Wg, Dg), Ug))
            sb = None
            if Abar is not None:
                Ag = np.repeat(Abar[:, None], k, axis=1)
                JT, _, _ = slow_jacobian(Ag, Wg, Ug, Dg, e, g)
                sb = _sorted(np.linalg.eigvals(JT)) if JT.size else np.zeros(0, complex)
        else:
            fb = np.zeros(0, complex)
            sb = _sorted(np.linalg.eigvals(Abar).ravel()) if Abar is not None else None
        fast = _sorted(wf[owner_f == j])
        slow = _sorted(ws[owner_s == j]) if ws is not None else None
        if j == len(bases) and fast.size == 0 and (slow is None or slow.size == 0):
            if bases or Abar is None:
                continue                                            # nothing outside Range(W)
        verdict, osc = _verdict(fast, slow, scale)
        rows.append(ModeSpectrum(label, fb, sb, fast, slow, verdict, osc))
    if not bases:                                                   # non-separable: one lattice row
        rows = [ModeSpectrum("lattice", np.zeros(0, complex), None, _sorted(wf),
                             None if ws is None else _sorted(ws), *_verdict(_sorted(wf), ws, scale))]
    unstable = [r.label for r in rows if r.verdict in ("unstable", "marginal")]
    if unstable:
        verdict = "unstable"
    elif any(r.verdict == "oscillatory" for r in rows):
        verdict = "oscillatory"
    else:
        verdict = "stable"
    info = {"rank_W": int(U.shape[1]), "state_kind": getattr(st, "kind", None)}
    return Spectrum(cm, source, approx, npos, pos, st, np.asarray(D, float), Dbar, _sorted(wf),
                    None if ws is None else _sorted(ws), cov, Mf, Js, rows, verdict, info)
