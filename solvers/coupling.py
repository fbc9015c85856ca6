"""The recurrent coupling field of the particle system (DESIGN.md §1), three ways.

For neurons of population a at positions theta_j the coupling field (the part of r_a without the
drive h_a) is

    F_a(theta_j) = (1/n) sum_b sum_{k in b} w_ab(theta_j, theta_k) g_b(x_k)
                 = sum_b alpha_b * mean_{k in b} w_ab(theta_j, theta_k) g_b(x_k)

(the fraction n_b / n is taken as alpha_b, as in the limit equations; it is exact when alpha_b n is
an integer).  Three evaluations, all returning the same numbers up to rounding:

* ``LowRankCoupling`` (separable kernels, w_ab = sum_{k,l} C_ab[k,l] psi_k(theta) chi_l(phi)):

      mu_{b,l}  = mean_{k in b} chi_l(theta_k) g_b(x_k)                  (P L moments, O(n L))
      c_{a,k}   = sum_{b,l} B[(a,k),(b,l)] mu_{b,l}   with B = constraint_matrix() (alpha_b inside)
      F_a(theta_j) = sum_k psi_k(theta_j) c_{a,k}                          (O(n K))

  The atoms psi and chi are evaluated once at the (fixed) neuron positions; atoms shared by psi and
  chi (cos theta in both) are stored once and constant atoms are stored as numbers, so ring_ei keeps
  two arrays (sin, cos) per population.
* ``FFTCoupling`` (translation-invariant kernels w_ab(theta, phi) = w_ab(theta - phi, 0) on a regular
  lattice with the same number of neurons N in every population):  F_a = sum_b alpha_b (w_ab * g_b) / N,
  a circular convolution on the ring (or the torus) computed with real FFTs in O(N log N).
* ``DenseCoupling`` (anything): the kernel matrix alpha_b w_ab(theta_j, theta_k) / n_b, stored when all
  P^2 blocks fit in half the memory budget, otherwise evaluated block of rows by block of rows every
  call, with the block size chosen so that the working memory stays under the budget (256 MB by
  default) whatever n is.

Each coupling also gives the spectrum of the linearised coupling map q -> W(D q) (DESIGN.md §2),
with D the gain slopes of the current neurons, used to state the explicit Euler stability limit
(computed by solvers.fast_spectrum: low rank on the (P K) x (P K) coefficient matrix B S, otherwise
on a coarse lattice).
This module never imports SymPy.
"""
from __future__ import annotations

import math

import numpy as np

from . import fast_spectrum

#: Working-memory budget of the dense coupling (bytes).
MEMORY_BUDGET = 256 * 2 ** 20
#: Live arrays of the size of one kernel block while a generated kernel expression is evaluated
#: (arguments, intermediate results, the result): the block size leaves room for this many.
KERNEL_TEMPORARIES = 6
#: Points per angle of the coarse grid on which non-separable fast spectra are estimated.
COARSE_RING, COARSE_TORUS = 64, 16


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _as_rows(values, n: int) -> np.ndarray:
    """A tuple of generated outputs (arrays or numbers) as a float array (len, n)."""
    out = np.empty((len(values), n))
    for i, v in enumerate(values):
        out[i] = v
    return out


def translation_invariant(model, *, samples: int = 64, seed: int = 12345, rtol: float = 1e-12) -> bool:
    """True if every kernel satisfies w_ab(theta, phi) = w_ab(theta - phi, 0) at random points
    (a numerical check: the kernels are analytic expressions, so agreement at random points up to
    rounding means the identity holds)."""
    if model.pos_dim == 0:
        return True
    rng = np.random.default_rng(seed)
    th = [rng.uniform(0, 2 * np.pi, samples) for _ in range(model.pos_dim)]
    ph = [rng.uniform(0, 2 * np.pi, samples) for _ in range(model.pos_dim)]
    diff = [np.mod(a - b, 2 * np.pi) for a, b in zip(th, ph)]
    zero = [np.zeros(samples) for _ in range(model.pos_dim)]
    for a in model.populations:
        for b in model.populations:
            f = getattr(model.module, f"kernel_{a}_{b}")
            w1 = np.broadcast_to(np.asarray(f(*th, *ph, **model.params), float), (samples,))
            w2 = np.broadcast_to(np.asarray(f(*diff, *zero, **model.params), float), (samples,))
            scale = max(1.0, float(np.max(np.abs(w1))))
            if not np.all(np.abs(w1 - w2) <= rtol * scale * 10):
                return False
    return True


def bin_index(pos, nbins: int, pos_dim: int) -> np.ndarray:
    """Index of the position bin of each neuron.  Bins are centred on the lattice model.grid(nbins)
    (ring: centre 2 pi i / nbins, arc of width 2 pi / nbins; torus: product bins, index
    i1 * nbins + i2 as in CompiledModel.grid).  Without space every neuron is in bin 0."""
    if pos_dim == 0:
        raise ValueError("bin_index needs positions")
    idx = None
    for p in pos:
        i = np.floor(np.asarray(p) * (nbins / (2 * np.pi)) + 0.5).astype(np.intp) % nbins
        idx = i if idx is None else idx * nbins + i
    return idx


def _kernel_block(model, a, b, th, ph) -> np.ndarray:
    """w_ab(th_i, ph_j) for position tuples th (rows) and ph (columns), as a float array."""
    nr = len(th[0]) if th else 1
    nc = len(ph[0]) if ph else 1
    f = getattr(model.module, f"kernel_{a}_{b}")
    w = f(*[np.asarray(p)[:, None] for p in th], *[np.asarray(p)[None, :] for p in ph], **model.params)
    return np.broadcast_to(np.asarray(w, float), (nr, nc))


def block_rows(ncols: int, budget: int = MEMORY_BUDGET) -> int:
    """Rows per kernel block so that KERNEL_TEMPORARIES blocks of (rows, ncols) float64 fit in budget."""
    return max(1, int(budget // (8 * KERNEL_TEMPORARIES * max(1, ncols))))


def _coarse_spectrum(model, positions, slopes, sizes) -> np.ndarray:
    """Eigenvalues of q -> W(D q) estimated on a coarse lattice (Nystrom): A[(a,i),(b,j)] =
    alpha_b w_ab(theta_i, theta_j) D_b(theta_j) / N_c, with D_b the mean gain slope of the neurons of
    b in the coarse cell around theta_j (the population mean where a cell is empty)."""
    P = model.P
    if model.pos_dim == 0:
        nc = 1
        cpos = ()
    else:
        nc = COARSE_RING if model.pos_dim == 1 else COARSE_TORUS
        nc = max(1, min(nc, int(round(min(sizes) ** (1.0 / model.pos_dim)))))
        cpos = model.grid(nc)
    N = model.n_positions(nc)
    D = np.empty((P, N))
    for ib in range(P):
        s = np.broadcast_to(np.asarray(slopes[ib], float), (sizes[ib],))
        if model.pos_dim == 0:
            D[ib] = s.mean()
        else:
            idx = bin_index(positions[ib], nc, model.pos_dim)
            cnt = np.bincount(idx, minlength=N)
            tot = np.bincount(idx, weights=s, minlength=N)
            D[ib] = np.where(cnt > 0, tot / np.maximum(cnt, 1), s.mean())
    W = np.empty((P * N, P * N))
    for ia, a in enumerate(model.populations):
        for ib, b in enumerate(model.populations):
            W[ia * N:(ia + 1) * N, ib * N:(ib + 1) * N] = model.alpha[ib] * _kernel_block(model, a, b, cpos, cpos) / N
    return fast_spectrum.eigenvalues(fast_spectrum.lattice_matrix(W, D))


# ---------------------------------------------------------------------------------------------
# low rank
# ---------------------------------------------------------------------------------------------
class _Atoms:
    """The distinct psi / chi atoms of one population at its neuron positions.

    Atom i is either a number (constant atom, ``const[i]`` not None) or row ``row[i]`` of the array
    ``U`` (r_nc, n_a).  ``psi_idx[k]`` and ``chi_idx[l]`` give the atom index of psi_k and chi_l."""

    def __init__(self, model, pos, n_a: int):
        psi = _as_rows(model.module.psi(*pos, **model.params), n_a) if model.K else np.empty((0, n_a))
        chi = _as_rows(model.module.chi(*pos, **model.params), n_a) if model.L else np.empty((0, n_a))
        atoms: list[np.ndarray] = []

        def index_of(v):
            for i, u in enumerate(atoms):
                if np.array_equal(u, v):
                    return i
            atoms.append(v)
            return len(atoms) - 1

        self.psi_idx = np.array([index_of(v) for v in psi], dtype=np.intp)
        self.chi_idx = np.array([index_of(v) for v in chi], dtype=np.intp)
        self.r = len(atoms)
        self.n = n_a
        self.const = np.zeros(self.r)            # value of each constant atom (0 for array atoms)
        self.is_const = np.zeros(self.r, bool)
        rows = []
        self.row_of = np.full(self.r, -1, dtype=np.intp)
        for i, v in enumerate(atoms):
            if np.all(v == v[0]):
                self.is_const[i] = True
                self.const[i] = v[0]
            else:
                self.row_of[i] = len(rows)
                rows.append(v)
        self.U = np.ascontiguousarray(np.array(rows, float).reshape(len(rows), n_a))
        self.nc_idx = np.flatnonzero(~self.is_const)      # atom indices of the rows of U
        self.any_const = bool(self.is_const.any())
        self.has_rows = len(rows) > 0
        self.const_over_n = self.const / n_a
        self._ix_nn = np.ix_(self.nc_idx, self.nc_idx)
        self._cc = np.outer(self.const, self.const)

    def moments(self, v) -> np.ndarray:
        """m_i = mean_j atom_i(theta_j) v_j, shape (r,)."""
        if self.any_const:
            out = self.const_over_n * float(v.sum())
        else:
            out = np.empty(self.r)
        if self.has_rows:
            out[self.nc_idx] = (self.U @ v) / self.n
        return out

    def moments2(self, v) -> np.ndarray:
        """m_ij = mean_j atom_i atom_j v (r, r) (v: gain slopes, an array broadcastable to (n,))."""
        v = np.broadcast_to(np.asarray(v, float), (self.n,))
        mean_v = float(v.sum()) / self.n
        out = self._cc * mean_v
        if self.has_rows:
            m1 = self.moments(v)                    # constant x array atoms: const_i * m1_j
            out[:, self.nc_idx] = np.outer(self.const, m1[self.nc_idx])
            out[self.nc_idx, :] = np.outer(m1[self.nc_idx], self.const)
            out[self._ix_nn] = (self.U * v) @ self.U.T / self.n
        return out

    def combine(self, coef, out):
        """sum_i coef_i atom_i(theta_j): written into ``out`` (n,) and returned, or returned as a
        number when every atom with a nonzero coefficient is constant (out untouched)."""
        shift = float(coef @ self.const) if self.any_const else 0.0
        if not self.has_rows:
            return shift
        w = coef[self.nc_idx]
        if not w.any():
            return shift
        np.matmul(w, self.U, out=out)
        if shift:
            out += shift
        return out


class LowRankCoupling:
    """Separable kernels: O(n (K + L)) per evaluation.  See the module docstring for the algebra.

    Attributes: B (P K, P L), K, L, atoms (per population _Atoms)."""

    kind = "lowrank"

    def __init__(self, model, positions, sizes):
        if not model.separable:
            raise ValueError(f"model {model.name!r}: the kernel is not separable, no low-rank coupling")
        self.model = model
        self.P, self.K, self.L = model.P, model.K, model.L
        self.B = np.asarray(model.constraint_matrix(), float).reshape(self.P * self.K, self.P * self.L)
        self.atoms = [_Atoms(model, positions[i], sizes[i]) for i in range(self.P)]
        self.sizes = list(sizes)
        self._ix = [np.ix_(at.chi_idx, at.psi_idx) for at in self.atoms]
        self._psi_sel = [np.zeros((at.r, self.K)) for at in self.atoms]   # coef = sel @ c_a
        for at, sel in zip(self.atoms, self._psi_sel):
            sel[at.psi_idx, np.arange(self.K)] = 1.0

    def mu(self, G) -> np.ndarray:
        """mu_{b,l} = mean_{k in b} chi_l(theta_k) g_b(x_k), flattened (P L,)."""
        return np.concatenate([at.moments(g)[at.chi_idx] for at, g in zip(self.atoms, G)])

    def coefficients(self, G) -> np.ndarray:
        """c = B mu, shape (P K,): F_a(theta) = sum_k psi_k(theta) c[a K + k]."""
        return self.B @ self.mu(G)

    def psi_combine(self, a: int, c_a, out):
        """sum_k psi_k(theta_j) c_a[k] at the neurons of population a (into out, or a number)."""
        return self.atoms[a].combine(self._psi_sel[a] @ c_a, out)

    def field(self, G) -> list:
        c = self.coefficients(G)
        return [np.broadcast_to(self.psi_combine(a, c[a * self.K:(a + 1) * self.K], np.empty(n)), (n,))
                for a, n in enumerate(self.sizes)]

    def slope_moments(self, GP) -> np.ndarray:
        """S = blockdiag_b M_b, shape (P L, P K), with M_b[l,k] = mean_{i in b} chi_l psi_k g'_b(x_i)."""
        S = np.zeros((self.P * self.L, self.P * self.K))
        for b, (at, gp) in enumerate(zip(self.atoms, GP)):
            S[b * self.L:(b + 1) * self.L, b * self.K:(b + 1) * self.K] = at.moments2(gp)[self._ix[b]]
        return S

    def fast_spectrum(self, positions, GP) -> np.ndarray:
        """Eigenvalues of q -> W(D q) on span{psi_k e_a}: eig(B S) with the neurons' own slopes
        (solvers.fast_spectrum on the whole (P K) x (P K) coefficient space: the eigenvalues on
        Range(W) and a zero per dimension of its null space)."""
        return fast_spectrum.eigenvalues(self.B @ self.slope_moments(GP))


# ---------------------------------------------------------------------------------------------
# FFT
# ---------------------------------------------------------------------------------------------
class FFTCoupling:
    """Translation-invariant kernels on a regular lattice, all populations of N neurons: circular
    convolution by real FFTs (ring: rfft of length N; torus: rfft2 on the side x side lattice)."""

    kind = "fft"

    def __init__(self, model, positions, sizes):
        if model.pos_dim == 0:
            raise ValueError("the FFT coupling needs a ring or torus lattice (model has no space)")
        if len(set(sizes)) != 1:
            raise ValueError(f"the FFT coupling needs equal population sizes, got {sizes}")
        if not translation_invariant(model):
            raise ValueError(f"model {model.name!r}: the kernel is not translation invariant, no FFT coupling")
        N = sizes[0]
        if model.pos_dim == 1:
            self.shape = (N,)
        else:
            side = math.isqrt(N)
            if side * side != N:
                raise ValueError(f"the FFT coupling on the torus needs a square lattice, got {N} neurons")
            self.shape = (side, side)
        self.axes = tuple(range(len(self.shape)))
        lattice = model.grid(self.shape[0])
        for p in positions:
            if not all(np.array_equal(np.asarray(u), v) for u, v in zip(p, lattice)):
                raise ValueError("the FFT coupling needs lattice positions")
        self.model, self.P, self.N, self.sizes = model, model.P, N, list(sizes)
        zero = tuple(np.zeros(1) for _ in range(model.pos_dim))
        self.what = [[None] * self.P for _ in range(self.P)]
        for ia, a in enumerate(model.populations):
            for ib, b in enumerate(model.populations):
                w = _kernel_block(model, a, b, lattice, zero)[:, 0].reshape(self.shape)
                self.what[ia][ib] = np.fft.rfftn(w) * (model.alpha[ib] / N)

    def field(self, G) -> list:
        gh = [np.fft.rfftn(np.broadcast_to(g, (self.N,)).reshape(self.shape)) for g in G]
        out = []
        for ia in range(self.P):
            acc = self.what[ia][0] * gh[0]
            for ib in range(1, self.P):
                acc += self.what[ia][ib] * gh[ib]
            out.append(np.fft.irfftn(acc, s=self.shape, axes=self.axes).reshape(self.N))
        return out

    def fast_spectrum(self, positions, GP) -> np.ndarray:
        return _coarse_spectrum(self.model, positions, GP, self.sizes)


# ---------------------------------------------------------------------------------------------
# dense
# ---------------------------------------------------------------------------------------------
class DenseCoupling:
    """Any kernel: the matrices alpha_b w_ab(theta_j, theta_k) / n_b, stored if all of them fit in
    half the budget, else recomputed in row blocks of block_rows(n_b, budget / 2) every call."""

    kind = "dense"

    def __init__(self, model, positions, sizes, budget: int = MEMORY_BUDGET):
        self.model, self.P, self.positions, self.sizes = model, model.P, positions, list(sizes)
        self.budget = int(budget)
        total = 8 * sum(sizes) ** 2
        self.stored = total <= self.budget // 2
        self.mats = None
        if self.stored:
            self.mats = [[self._matrix(ia, ib) for ib in range(self.P)] for ia in range(self.P)]

    def _rows(self, ib: int) -> int:
        return block_rows(self.sizes[ib], self.budget // 2)

    def _block(self, ia, ib, lo, hi, pos_rows=None):
        a, b = self.model.populations[ia], self.model.populations[ib]
        th = tuple(np.asarray(p)[lo:hi] for p in (self.positions[ia] if pos_rows is None else pos_rows))
        if self.model.pos_dim == 0:
            th = ()
        w = _kernel_block(self.model, a, b, th, self.positions[ib])
        return np.broadcast_to(w, (hi - lo, self.sizes[ib])) * (self.model.alpha[ib] / self.sizes[ib])

    def _matrix(self, ia, ib):
        na, nb = self.sizes[ia], self.sizes[ib]
        M = np.empty((na, nb))
        step = self._rows(ib)
        for lo in range(0, na, step):
            hi = min(na, lo + step)
            M[lo:hi] = self._block(ia, ib, lo, hi)
        return M

    def field(self, G) -> list:
        out = []
        for ia in range(self.P):
            na = self.sizes[ia]
            acc = np.zeros(na)
            for ib in range(self.P):
                g = np.broadcast_to(G[ib], (self.sizes[ib],))
                if self.stored:
                    acc += self.mats[ia][ib] @ g
                else:
                    step = self._rows(ib)
                    for lo in range(0, na, step):
                        hi = min(na, lo + step)
                        acc[lo:hi] += self._block(ia, ib, lo, hi) @ g
            out.append(acc)
        return out

    def fast_spectrum(self, positions, GP) -> np.ndarray:
        return _coarse_spectrum(self.model, positions, GP, self.sizes)


def field_at(model, pos_c, positions, sizes, G, budget: int = MEMORY_BUDGET) -> np.ndarray:
    """The coupling field F_a at arbitrary positions pos_c (a tuple of arrays of length Nc) from
    the neurons' gains G by direct summation in row blocks: array (P, Nc)."""
    Nc = len(pos_c[0]) if pos_c else 1
    out = np.zeros((model.P, Nc))
    for ia, a in enumerate(model.populations):
        for ib, b in enumerate(model.populations):
            g = np.broadcast_to(G[ib], (sizes[ib],))
            step = block_rows(sizes[ib], budget)
            for lo in range(0, Nc, step):
                hi = min(Nc, lo + step)
                th = tuple(np.asarray(p)[lo:hi] for p in pos_c)
                w = np.broadcast_to(_kernel_block(model, a, b, th, positions[ib]), (hi - lo, sizes[ib]))
                out[ia, lo:hi] += (w @ g) * (model.alpha[ib] / sizes[ib])
    return out


def fft_possible(model, positions, sizes, lattice: bool) -> bool:
    if model.pos_dim == 0 or not lattice or len(set(sizes)) != 1:
        return False
    if model.pos_dim == 2 and math.isqrt(sizes[0]) ** 2 != sizes[0]:
        return False
    return translation_invariant(model)


def make_coupling(model, positions, sizes, kind: str = "auto", *, lattice: bool = True,
                  budget: int = MEMORY_BUDGET):
    """Build the coupling: 'lowrank', 'fft', 'dense', or 'auto' (low rank if the kernel is
    separable, else FFT if the kernel is translation invariant on equal lattices, else dense)."""
    if kind == "auto":
        if model.separable:
            kind = "lowrank"
        elif fft_possible(model, positions, sizes, lattice):
            kind = "fft"
        else:
            kind = "dense"
    if kind == "lowrank":
        return LowRankCoupling(model, positions, sizes)
    if kind == "fft":
        if not lattice:
            raise ValueError("the FFT coupling needs lattice positions (positions='lattice')")
        return FFTCoupling(model, positions, sizes)
    if kind == "dense":
        return DenseCoupling(model, positions, sizes, budget)
    raise ValueError(f"coupling must be 'auto', 'lowrank', 'fft' or 'dense', got {kind!r}")
