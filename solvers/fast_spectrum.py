"""The fast spectrum of a balanced network: the one implementation (DESIGN.md §2 and §4b).

Off the balanced manifold the imbalance relaxes at rate sqrt(n) through the linear map

    q -> W (D q)   on Range(W),        D = diag(<g'>)  (the mean gain slopes, per population and position),

whose eigenvalues mu are the fast spectrum of the balanced limit: the manifold attracts iff every
Re mu < 0, and complex mu mean damped oscillations of angular frequency sqrt(n) Im mu.  At finite n,
linearising the finite-n McKean-Vlasov equation about a state, a shift of the densities (and so the
imbalance) evolves with the finite-n fast matrix

    F_n = diag(J) + sqrt(n) W D,        J = <d f_e / d x_e>  (intrinsic relaxation, J = -1 for f = -x),

whose eigenvalues nu are the rates Re nu and angular frequencies Im nu at that n (nu = J + sqrt(n) mu
when J is one number).

Coordinates.  Each caller holds W D in its own coordinates x, as a matrix or as its action on a block
of columns, with an orthonormal basis Q (columns) of the admissible subspace in the same coordinates:

  * lattice values, x[(a, i)] = q_a(theta_i) (P N entries): W D = W diag(D), W the lattice matrix
    alpha_b w_ab(theta_i, theta_j) / N (``lattice_operator``, ``lattice_matrix``); Q = U, an
    orthonormal basis of Range(W) on the lattice (the spectrum command, the kinetic and field solvers);
  * low-rank coefficients, x[(a, k)] on span{psi_k e_a} (P K entries): W D = B G_D with
    G_D[(b,l),(b,k)] = <chi_l D_b psi_k>, an average over the lattice (LatticeCoupling, used by the
    stationary solver and verify) or over the neurons (the particles' LowRankCoupling).

``compress`` returns the r x r matrix  Q^T F Q  (F = W D, or F_n when n is given).  W D maps into
Range(W), so when Q spans Range(W) its eigenvalues are those of W D restricted to Range(W), whatever
the inner product of the coordinates.  Q = None takes the whole coordinate space: the eigenvalues on
Range(W) plus one zero per dimension of the null space of W (the particles' step audit, every 20
steps, on the (P K) x (P K) coefficient matrix: O((P K)^3), independent of the number of neurons).
The intrinsic part is given as j, the diagonal of diag(J) in the same coordinates: on the lattice J
at each position; on coefficients each population's J averaged over positions, repeated K times
(span{psi} is not invariant under multiplication by a position-dependent J; exact for J constant
in theta, e.g. a drift linear in the state).

Per-mode grouping (``assign_modes``).  The module's MODES group the psi atoms into Fourier modes;
on a ring each mode has its own P x P block when the state is homogeneous, otherwise the modes
couple.  Each eigenvalue goes to a mode by its eigenvector.  Eigenvalues that coincide (to
CLUSTER_RTOL relative) form one eigenspace, whose computed eigenvectors are an arbitrary basis of it
(e.g. mixtures of the cos and sin modes of a homogeneous state): the cluster's k copies are shared
out among the modes in proportion to the squared norm of the eigenspace's projection onto each mode
(largest remainders), so a degenerate cos/sin pair gives one eigenvalue to each; a single eigenvalue
goes to the mode that holds most of its eigenvector.  The part of the eigenspace outside every mode
forms one more group (index len(modes)).

This module never imports SymPy.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .blas_threads import small_matrices

CLUSTER_RTOL = 1e-8         # eigenvalues closer than this (relative to max(1, max |w|)) form one eigenspace

__all__ = ["compress", "eigenvalues", "eigensystem", "lattice_operator", "lattice_matrix", "sort_eigenvalues",
           "assign_modes", "index_weights", "lattice_mode_weights", "by_mode"]


# ---- the matrix and its eigenvalues ----------------------------------------------------------

def lattice_operator(W: np.ndarray, D) -> Callable[[np.ndarray], np.ndarray]:
    """The action X -> W diag(D) X of W D on lattice columns (W (P N, P N), D flattened (P N,)),
    without forming W diag(D): O((P N)^2 r) for r columns."""
    d = np.ravel(np.asarray(D, float))[:, None]
    return lambda X: W @ (d * X)


def lattice_matrix(W: np.ndarray, D) -> np.ndarray:
    """W diag(D) on the lattice, (P N, P N)."""
    return W * np.ravel(np.asarray(D, float))[None, :]


def compress(WD, Q: np.ndarray | None = None, *, n: float | None = None, j=None) -> np.ndarray:
    """Q^T F Q with F = W D (n None) or F = diag(j) + sqrt(n) W D (module docstring).

    WD: the matrix of W D in the caller's coordinates (d, d), or its action X -> (W D) X on a block
    of columns; Q (d, r) orthonormal columns, or None for the whole space (then WD must be a matrix);
    j (d,): the intrinsic slopes in the same coordinates (None: 0)."""
    if Q is None:
        if callable(WD):
            raise TypeError("compress: the whole space (Q = None) needs W D as a matrix")
        F = np.asarray(WD, float)
        if n is None:
            return F
        F = math.sqrt(float(n)) * F
        if j is not None:
            F = F + np.diag(np.ravel(np.asarray(j, float)))
        return F
    WDQ = WD(Q) if callable(WD) else np.asarray(WD, float) @ Q
    if n is None:
        return Q.T @ WDQ
    if j is None:
        return Q.T @ (math.sqrt(float(n)) * WDQ)
    return Q.T @ (np.ravel(np.asarray(j, float))[:, None] * Q + math.sqrt(float(n)) * WDQ)


@small_matrices
def eigenvalues(WD, Q: np.ndarray | None = None, *, n: float | None = None, j=None) -> np.ndarray:
    """Eigenvalues of ``compress(WD, Q, n=n, j=j)`` (unsorted; empty for an empty subspace)."""
    M = compress(WD, Q, n=n, j=j)
    if M.size == 0:
        return np.zeros(0, complex)
    return np.linalg.eigvals(M)


@small_matrices
def eigensystem(WD, Q: np.ndarray | None = None, *, n: float | None = None, j=None):
    """(w, X): the eigenvalues of ``compress(WD, Q, n=n, j=j)`` and their eigenvectors in the caller's
    coordinates, X = Q Y (unit columns; Y the eigenvectors of the compressed matrix)."""
    M = compress(WD, Q, n=n, j=j)
    d = M.shape[0] if Q is None else Q.shape[0]
    if M.size == 0:
        return np.zeros(0, complex), np.zeros((d, 0), complex)
    w, Y = np.linalg.eig(M)
    return w, (Y if Q is None else Q @ Y)


def sort_eigenvalues(w) -> np.ndarray:
    """w as a complex array sorted by real part, then imaginary part."""
    w = np.asarray(w, complex)
    return w[np.lexsort((w.imag, w.real))]


# ---- per-mode grouping ------------------------------------------------------------------------

def index_weights(groups) -> Callable[[np.ndarray], np.ndarray]:
    """weigh(Y) for modes given as groups of coordinate indices (coefficients on span{psi_k e_a}):
    the squared norm of the rows of each group, (len(groups),)."""
    idx = [np.asarray(g, dtype=np.intp) for g in groups]
    return lambda Y: np.array([float(np.sum(np.abs(Y[g]) ** 2)) for g in idx])


def lattice_mode_weights(bases, P: int, N: int, m: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """weigh(Y) for modes given as orthonormal lattice bases E_g (N, k_g) of their psi atoms, for
    vectors ordered (population, position[, component]): sum over populations and components of
    |E_g^T y|^2, (len(bases),)."""
    def weigh(Y):
        V = Y.reshape(P, N, m, -1)
        return np.array([float(np.sum(np.abs(np.einsum("nq,pncj->pqcj", Eg, V)) ** 2)) for Eg in bases])
    return weigh


def assign_modes(w: np.ndarray, vectors: np.ndarray, weigh: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Mode index of each eigenvalue w[j] with eigenvector vectors[:, j] (module docstring): an index
    into the modes weigh knows, or len(modes) for the part outside all of them."""
    k = vectors.shape[1]
    owner = np.zeros(k, int)
    if k == 0:
        return owner
    scale = max(1.0, float(np.abs(w).max()))
    order = np.lexsort((w.imag, w.real))
    clusters, cur = [], [order[0]]
    for i in order[1:]:
        if abs(w[i] - w[cur[-1]]) <= CLUSTER_RTOL * scale:
            cur.append(i)
        else:
            clusters.append(cur)
            cur = [i]
    clusters.append(cur)
    for cl in clusters:
        Y = vectors[:, cl]
        Uy, sv, _ = np.linalg.svd(Y, full_matrices=False)
        Y = Uy[:, sv > CLUSTER_RTOL * sv[0]] if sv.size and sv[0] > 0 else Y
        inside = np.asarray(weigh(Y), float)
        weights = np.append(inside, max(float(np.sum(np.abs(Y) ** 2)) - inside.sum(), 0.0))
        share = weights / max(weights.sum(), 1e-300) * len(cl)
        counts = np.floor(share).astype(int)
        for g in np.argsort(-(share - counts))[:len(cl) - counts.sum()]:
            counts[g] += 1
        owner[cl] = np.repeat(np.arange(len(weights)), counts)
    return owner


def by_mode(w: np.ndarray, owner: np.ndarray, labels) -> dict:
    """{label: the sorted eigenvalues assigned to it} for the labels that received any (in order)."""
    out = {}
    for m, label in enumerate(labels):
        sel = owner == m
        if np.any(sel):
            out[label] = sort_eigenvalues(w[sel])
    return out
