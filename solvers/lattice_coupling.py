"""The connectivity operator W on a lattice of positions, in factored (low-rank) form, with its
range, the drive's coefficients and the fast-manifold matrix W D (DESIGN.md §2), whose spectrum
solvers.fast_spectrum computes.

    (W q)_a(theta_i) = sum_k Psi[k, i] sum_{b,l} B[(a,k),(b,l)] mu_{b,l},
    mu_{b,l} = <chi_l, q_b> = (1/N) sum_j Chi[l, j] q_b(theta_j)          (lattice average).

Separable kernels use the generated atoms (Psi = psi on the lattice, Chi = chi, B =
constraint_matrix(), the drive's coefficients H = drive_coefficients(t) and the part of h outside
span psi, drive_residual_P).  A kernel that does not split is discretised on the lattice instead:
Psi = identity, Chi = N * identity (so mu_b = q_b pointwise) and B[(a,i),(b,j)] = alpha_b
w_ab(theta_i, phi_j) / N; its rank then comes from the SVD below.

Range(W) in coefficient space is the column space of B: Q (orthonormal columns) spans the left
singular vectors with singular value > RANK_RTOL * (largest singular value).
"""
from __future__ import annotations

import numpy as np

from . import fast_spectrum

#: Lattice positions per angle when none are given (the stationary solver, feasibility, the field).
DEFAULT_NPOS = {"point": 1, "ring": 64, "torus2": 32}
RANK_RTOL = 1e-10           # numerical rank of B: singular values below RANK_RTOL * s_max are zero
MAX_DENSE_UNKNOWNS = 4096   # non-separable kernels: P * N unknowns at most (dense matrices)


class LatticeCoupling:
    """W of a CompiledModel on its lattice of ``npos`` positions (per angle) at time t.

    Attributes: pos (positions), N, P, K, L, Psi (K, N), Chi (L, N), B (P K, P L), H (P, K),
    h_res (P, N) (drive outside span psi), Q (P K, r) orthonormal basis of Range(W), rank r,
    modes (list of (label, psi indices); labels like 'psi=cos(theta)', from the module's MODES),
    separable."""

    def __init__(self, model, npos: int, t: float = 0.0, *, rank_rtol: float = RANK_RTOL):
        self.model, self.t = model, float(t)
        self.pos = model.grid(npos)
        self.N = model.n_positions(npos)
        self.P = model.P
        self.separable = model.separable
        if self.separable:
            mod, prm = model.module, model.params
            self.Psi = model.psi(self.pos)
            self.Chi = model.chi(self.pos)
            self.B = np.asarray(model.constraint_matrix(), float)
            self.H = np.asarray(mod.drive_coefficients(self.t, **prm), float).reshape(self.P, -1)
            self.h_res = np.array([np.broadcast_to(model.call("drive_residual", a, *self.pos, self.t),
                                                   (self.N,)) for a in model.populations], float)
            labels = tuple(mod.PSI)
            self.modes = [("psi=" + ",".join(labels[k] for k in grp), tuple(grp)) for grp in mod.MODES]
            gram = self.Psi @ self.Psi.T / self.N
            if np.linalg.matrix_rank(gram, tol=1e-10 * max(np.abs(gram).max(), 1e-300)) < self.Psi.shape[0]:
                raise ValueError(f"model {model.name!r}: the {self.Psi.shape[0]} range atoms psi are not "
                                 f"independent on a lattice of {npos} positions per angle; use more positions")
        else:
            if self.P * self.N > MAX_DENSE_UNKNOWNS:
                raise ValueError(f"model {model.name!r}: the kernel is not separable, so W is discretised "
                                 f"on the lattice as a dense {self.P * self.N} x {self.P * self.N} matrix; "
                                 f"that exceeds {MAX_DENSE_UNKNOWNS} unknowns; use fewer positions (--npos)")
            N = self.N
            self.Psi = np.eye(N)
            self.Chi = N * np.eye(N)
            B = np.zeros((self.P * N, self.P * N))
            for ia, a in enumerate(model.populations):
                for ib, b in enumerate(model.populations):
                    B[ia * N:(ia + 1) * N, ib * N:(ib + 1) * N] = (
                        model.alpha[ib] * model.kernel_matrix(a, b, self.pos, self.pos) / N)
            self.B = B
            self.H = model.drive(self.pos, self.t)
            self.h_res = np.zeros((self.P, N))
            self.modes = [("lattice (non-separable kernel)", tuple(range(N)))]
        self.K, self.L = self.Psi.shape[0], self.Chi.shape[0]
        U, s, _ = np.linalg.svd(self.B)
        smax = s[0] if s.size else 0.0
        self.singular_values = s
        self.rank_tol = rank_rtol * smax
        self.rank = int(np.count_nonzero(s > self.rank_tol)) if smax > 0 else 0
        self.Q = U[:, :self.rank]

    # ---- maps between coefficients and the lattice ---------------------------------------------
    def on_lattice(self, Lam: np.ndarray) -> np.ndarray:
        """sum_k Lam[a, k] psi_k(theta_i): (P, K) coefficients -> (P, N) values."""
        return np.asarray(Lam, float).reshape(self.P, self.K) @ self.Psi

    def moments(self, q: np.ndarray) -> np.ndarray:
        """mu[b, l] = <chi_l, q_b> (lattice average), (P, N) -> (P, L)."""
        return np.asarray(q, float) @ self.Chi.T / self.N

    def apply(self, q: np.ndarray) -> np.ndarray:
        """Coefficients (P, K) of W q."""
        return (self.B @ self.moments(q).ravel()).reshape(self.P, self.K)

    def drive_on_lattice(self) -> np.ndarray:
        """h on the lattice, (P, N)."""
        return self.on_lattice(self.H) + self.h_res

    def weighted_gram(self, w: np.ndarray) -> np.ndarray:
        """G_w[(b,l),(b,j)] = <chi_l w_b psi_j> (lattice average), block diagonal (P L, P K).
        With w = d gbar / d lambda it is d mu / d Lambda; with w = D it gives W D = B G_D."""
        w = np.asarray(w, float).reshape(self.P, self.N)
        G = np.zeros((self.P * self.L, self.P * self.K))
        for b in range(self.P):
            G[b * self.L:(b + 1) * self.L, b * self.K:(b + 1) * self.K] = (self.Chi * w[b]) @ self.Psi.T / self.N
        return G

    def in_range(self, v: np.ndarray) -> np.ndarray:
        """Orthogonal projection (coefficient space) of v (P K) onto Range(W) = colspace(B)."""
        v = np.asarray(v, float).ravel()
        return self.Q @ (self.Q.T @ v)

    # ---- feasibility and spectrum -----------------------------------------------------------------
    def drive_outside_range(self) -> tuple[float, float, float]:
        """(residual, residual outside span psi, rms of h): rms over the lattice and populations of
        the part of h that no W q cancels (its L2 distance from Range(W) on the lattice), of the
        generated drive_residual alone, and of h itself."""
        h = self.drive_on_lattice().ravel()
        cols = np.zeros((self.P * self.N, self.rank))
        for a in range(self.P):
            cols[a * self.N:(a + 1) * self.N] = self.Psi.T @ self.Q[a * self.K:(a + 1) * self.K]
        if self.rank:
            Qc, _ = np.linalg.qr(cols)
            h_out = h - Qc @ (Qc.T @ h)
        else:
            h_out = h
        rms = lambda v: float(np.sqrt(np.mean(np.square(v))))  # noqa: E731
        return rms(h_out), rms(self.h_res), rms(h)

    def demanded_moments(self) -> np.ndarray | None:
        """The moments mu (P, L) that balance B mu + H = 0 demands, when B has full column rank
        (then they are unique); None otherwise."""
        if self.rank < self.P * self.L:
            return None
        mu = np.linalg.lstsq(self.B, -self.H.ravel(), rcond=None)[0]
        return mu.reshape(self.P, self.L)

    def fast_matrix(self, D: np.ndarray) -> np.ndarray:
        """The matrix of q -> W (D q) on span{psi_k e_a}: B G_D, (P K, P K)."""
        return self.B @ self.weighted_gram(D)

    def _intrinsic(self, n, J):
        """The intrinsic slopes j in coefficient coordinates (solvers.fast_spectrum): each population's
        J averaged over the positions, repeated over its K coefficients; None without n or J."""
        if n is None or J is None:
            return None
        return np.repeat(np.asarray(J, float).reshape(self.P, -1).mean(axis=1), self.K)

    def fast_modes(self, D: np.ndarray, *, n: float | None = None, J: np.ndarray | None = None):
        """(w, X): the eigenvalues of W D on Range(W) (or, with n, of the finite-n fast matrix; see
        fast_spectrum) and their eigenvectors as coefficients on span{psi_k e_a}, X (P K, r)
        (solvers.fast_spectrum.eigensystem on the columns Q)."""
        return fast_spectrum.eigensystem(self.fast_matrix(D), self.Q, n=n, j=self._intrinsic(n, J))

    def fast_spectrum(self, D: np.ndarray, *, n: float | None = None, J: np.ndarray | None = None):
        """Eigenvalues of W D restricted to Range(W) (Q^T B G_D Q), and the same eigenvalues grouped
        per mode (groups of psi indices, the module's MODES; solvers.fast_spectrum.assign_modes:
        each eigenvalue goes to the mode that holds most of its eigenvector, a degenerate eigenspace
        is shared out among its modes).  Returns (eigenvalues sorted by real then imaginary part,
        {mode label: eigenvalues}).

        With n (and J, the intrinsic relaxation <d f_e / d x_e> per population, (P,) or (P, N),
        averaged over positions): the finite-n fast matrix  diag(J) + sqrt(n) W D  of DESIGN.md §4b
        on the same subspace, whose eigenvalues are the rates Re(J) + sqrt(n) Re(mu) and the angular
        frequencies sqrt(n) Im(mu) of the imbalance at that n (exact for linear drift with additive
        noise, where a shift of the density is an exact mode; the shift-mode estimate otherwise)."""
        if self.rank == 0:
            return np.zeros(0, complex), {}
        w, X = self.fast_modes(D, n=n, J=J)
        groups = [[a * self.K + k for a in range(self.P) for k in grp] for _, grp in self.modes]
        owner = fast_spectrum.assign_modes(w, X, fast_spectrum.index_weights(groups))
        return (fast_spectrum.sort_eigenvalues(w),
                fast_spectrum.by_mode(w, owner, [label for label, _ in self.modes]))


# ---- the dense lattice matrix (time-dependent solvers work with lattice fields) --------------

def lattice_W(model, pos) -> np.ndarray:
    """W[(a,i),(b,j)] = alpha_b w_ab(theta_i, theta_j) / Npos, shape (P Npos, P Npos)."""
    N = model.n_positions_of(pos)
    P = model.P
    from .resources import check_lattice_memory
    check_lattice_memory(P, N, f"model {model.name!r}: the dense lattice coupling matrix")
    W = np.zeros((P * N, P * N))
    for ia, a in enumerate(model.populations):
        for ib, b in enumerate(model.populations):
            W[ia * N:(ia + 1) * N, ib * N:(ib + 1) * N] = model.alpha[ib] * model.kernel_matrix(a, b, pos, pos) / N
    return W


def range_basis(W: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Orthonormal basis (columns) of the column space of W: left singular vectors with
    singular value > tol * largest."""
    U, s, _ = np.linalg.svd(W, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return U[:, :0]
    return U[:, s > tol * s[0]]


def lattice_range_basis(model, pos, W: np.ndarray) -> np.ndarray:
    """range_basis(W) for the lattice matrix W of ``model`` on ``pos``.  For a separable kernel
    Range(W) lies in span{psi_k e_a} on the lattice, so with Q_psi an orthonormal basis of that
    span, U = Q_psi range_basis(Q_psi^T W): the same subspace and singular values, from QR
    factorisations and an SVD of a (P K) x (P K) matrix instead of the (P N) x (P N) lattice W."""
    N = model.n_positions_of(pos)
    if not model.separable or model.K >= N:
        return range_basis(W)
    psi = model.psi(pos)                                          # (K, N)
    Qp, _ = np.linalg.qr(np.kron(np.eye(model.P), psi.T))         # (P N, P K)
    # Q_psi^T W = R^T Q^T (QR of its transpose): same column space and singular values as R^T
    _, R = np.linalg.qr((Qp.T @ W).T)
    return Qp @ range_basis(R.T)
