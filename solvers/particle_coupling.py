"""The coupling part of one particle step (solvers.particles.simulate).

make_coupling_step builds the coupling operator (solvers.coupling: low rank, FFT or blocked dense)
and chooses its step:

  FieldCouplingStep        FFT / dense (kernel not separable): explicit, r_a - h_a = coup.field(G).
  LowRankExplicitStep      separable kernel, implicit=False: c = B mu (mu the P L moments of the
                           gains), r_a - h_a = psi . c_a, explicit.
  ExponentialCouplingStep  separable kernel, implicit=True: the exponential (Rosenbrock) step on the
                           coupling moments.  With s_{b,l} = mean_{i in b} chi_l g'_b dx^expl_{i,e} (the
                           moments of the explicit increment, collected by add_increment),
                           S = blockdiag_b M_b (coup.slope_moments) and Z = dt sqrt(n) S B, the coupling
                           averaged over the step is c + dz, dz = B phi_2(Z) s; every neuron gets
                           dx_j += dt sqrt(n) psi(theta_j) . dz_a e (correct).  phi_2 is refreshed
                           every jacobian_every steps (and after a refinement of dt).

The interface a coupling step provides to the run (one step: start, refresh, then per population
field_into / add_increment, finish, then correct after the records):

  kind ('exponential' | 'explicit'), lowrank, uses_slopes, coup;
  needs_slopes(step)       the gain slopes are needed at this step (refresh);
  start(G) -> c | None     the coupling of the states at the start of the step (c for low rank);
  refresh(GP, dt)          new slopes (exponential step only);
  field_into(a, F)         F (n_a,) <- r_a - h_a at the neurons (the coupling the explicit step sees);
  add_increment(a, dxe, gp) the explicit increment of component e of population a;
  finish() -> c_eff        the coefficients applied in the step (lam records; None for FFT / dense);
  correct(a, xe, dt, work) add the implicit correction to component e of the new states;
  c, c_eff, fields         (for the records).
No SymPy, no printing.
"""
from __future__ import annotations

import math

import numpy as np

from .coupling import make_coupling
from .exponential import phi_functions


class FieldCouplingStep:
    """Explicit coupling by direct field evaluation (FFT / dense): r_a - h_a = coup.field(G)[a]."""

    kind = "explicit"
    uses_slopes = False

    def __init__(self, coup):
        self.coup = coup
        self.lowrank = coup.kind == "lowrank"
        self.c = self.c_eff = self.fields = None

    def needs_slopes(self, step: int) -> bool:
        """Whether the step needs the current gain slopes (never, for an explicit step)."""
        return False

    def start(self, G):
        """Fields of the gains G at the start of the step; returns None (no coefficients)."""
        self.fields = self.coup.field(G)
        return None

    def refresh(self, GP, dt: float) -> None:
        """No slopes are used by an explicit step."""

    def field_into(self, a: int, F) -> None:
        """F <- sum_b alpha_b mean_{k in b} w_ab(theta_j, theta_k) g_b(x_k) at the neurons of a."""
        np.copyto(F, self.fields[a])

    def add_increment(self, a: int, dxe, gp) -> None:
        """Nothing to collect for an explicit step."""

    def finish(self):
        """The coefficients applied (None: no low-rank coefficients)."""
        return self.c_eff

    def correct(self, a: int, xe, dt: float, work) -> None:
        """No implicit correction."""


class LowRankExplicitStep(FieldCouplingStep):
    """Explicit low-rank coupling: c = B mu(G), r_a(theta_j) - h_a = sum_k psi_k(theta_j) c_{a,k}."""

    def __init__(self, coup):
        super().__init__(coup)
        self.K = coup.K

    def start(self, G):
        """c = B mu with mu_{b,l} = mean_{k in b} chi_l(theta_k) g_b(x_k); returns c (P K,)."""
        self.c = self.coup.coefficients(G)
        self.fields = None
        return self.c

    def field_into(self, a: int, F) -> None:
        """F <- psi(theta_j) . c_a at the neurons of a."""
        K = self.K
        v = self.coup.psi_combine(a, self.c[a * K:(a + 1) * K], F)
        if not isinstance(v, np.ndarray):
            F.fill(v)

    def finish(self):
        """The coefficients applied: c (explicit)."""
        self.c_eff = self.c
        return self.c_eff


class ExponentialCouplingStep(LowRankExplicitStep):
    """The exponential coupling step on the low-rank moments (see the module docstring)."""

    kind = "exponential"
    uses_slopes = True

    def __init__(self, coup, sizes, n: int, jacobian_every: int = 1):
        super().__init__(coup)
        self.sq = math.sqrt(n)
        self.L = coup.L
        self.B = coup.B
        self.jacobian_every = int(jacobian_every)
        self.Phi2 = None
        self.dz = None
        self.s_vec = np.empty(coup.P * coup.L)
        self.T = [np.empty(s) for s in sizes]

    def needs_slopes(self, step: int) -> bool:
        """The slopes are refreshed at the first step and every jacobian_every steps."""
        return self.Phi2 is None or step % self.jacobian_every == 0

    def refresh(self, GP, dt: float) -> None:
        """Phi2 = phi_2(Z), Z = dt sqrt(n) S B with S = blockdiag_b mean chi_l psi_k g'_b (slopes GP)."""
        S = self.coup.slope_moments(GP)
        self.Phi2 = phi_functions((dt * self.sq) * (S @ self.B))[2]

    def add_increment(self, a: int, dxe, gp) -> None:
        """s_{a,l} = mean_{i in a} chi_l(theta_i) g'_a(x_i) dx^expl_{i,e}."""
        tb = self.T[a]
        np.multiply(dxe, gp, out=tb)
        at = self.coup.atoms[a]
        L = self.L
        self.s_vec[a * L:(a + 1) * L] = at.moments(tb)[at.chi_idx]

    def finish(self):
        """dz = B phi_2(Z) s and the coefficients averaged over the step c_eff = c + dz."""
        # non-finite values are caught with the states (after correct)
        self.dz = self.B @ (self.Phi2 @ self.s_vec)
        self.c_eff = self.c + self.dz
        return self.c_eff

    def correct(self, a: int, xe, dt: float, work) -> None:
        """xe += dt sqrt(n) psi(theta_j) . dz_a (work: a scratch buffer (n_a,))."""
        K = self.K
        corr = self.coup.psi_combine(a, self.dz[a * K:(a + 1) * K], work)
        xe += (dt * self.sq) * corr


def make_coupling_step(cm, pos, sizes, coupling: str, *, lattice: bool, implicit: bool, n: int,
                       jacobian_every: int = 1):
    """The coupling operator (solvers.coupling.make_coupling: 'auto' | 'lowrank' | 'fft' | 'dense')
    and its step: exponential for a low-rank coupling with implicit=True, explicit otherwise."""
    coup = make_coupling(cm, pos, sizes, coupling, lattice=lattice)
    if coup.kind != "lowrank":
        return FieldCouplingStep(coup)
    if implicit:
        return ExponentialCouplingStep(coup, sizes, n, jacobian_every)
    return LowRankExplicitStep(coup)
