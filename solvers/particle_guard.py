"""The step audit and the numerical guards of the particle simulator (solvers.particles.simulate).

The fast coupling spectrum mu = sqrt(n) eig(W D) (D: the neurons' current gain slopes; exact for
separable kernels, a coarse-lattice estimate for FFT / dense couplings, ``coup.fast_spectrum``) is
compared with the step dt: |z| = dt |mu| must not exceed z_acc = accurate_z(step, tol) (0.49 for the
exponential coupling step, 0.04 for explicit Euler at tol = 2 %: solvers.exponential).

  dt_guard 'refine': dt -> dt / k with the smallest integer k >= |z| / z_acc (at most MAX_REFINE in
                     all below the requested dt, else StepTooCoarse);
           'refuse': StepTooCoarse with the largest accurate step z_acc / |mu|;
           'off':    no accuracy check.
Explicit steps are in every case checked for stability: dt <= 2 Re(-mu) / |mu|^2 for every mode with
Re mu < 0 (explicit_dt_limit), else ValueError before the run and SimulationUnstable during it.

Non-finite states or coupling moments raise SimulationBlowUp (blowup).  No SymPy, no printing.
"""
from __future__ import annotations

import math

import numpy as np

from .exponential import accurate_z

#: The step is audited against the fast spectrum (current gain slopes) every this many steps.
STABILITY_CHECK_EVERY = 20
#: dt_guard='refine' divides the requested dt by at most this factor before it refuses.
MAX_REFINE = 256


class SimulationBlowUp(RuntimeError):
    """The particle states became non-finite (NaN or overflow) during a run."""


class SimulationUnstable(ValueError):
    """An explicit run's dt exceeds the stability limit of a fast coupling mode (found during the run,
    after the gain slopes changed; the check before the run raises a plain ValueError)."""


class StepTooCoarse(ValueError):
    """The time step cannot resolve the fast coupling dynamics: dt sqrt(n) |mu| exceeds the accurate
    limit of the coupling step (dt_guard='refuse', or 'refine' beyond MAX_REFINE).  Attributes:
    dt (the step in use), dt_accurate (the largest accurate step at that state), t, mu."""

    def __init__(self, message, dt, dt_accurate, t, mu):
        super().__init__(message)
        self.dt, self.dt_accurate, self.t, self.mu = dt, dt_accurate, t, mu


def explicit_dt_limit(eigenvalues) -> tuple[float, complex | None]:
    """Largest dt with |1 + dt mu| <= 1 for every mu with Re mu < 0: min 2 Re(-mu) / |mu|^2,
    and the eigenvalue that sets it (inf, None if there is none)."""
    best, arg = math.inf, None
    for mu in np.atleast_1d(eigenvalues):
        if mu.real < 0:
            lim = 2.0 * (-mu.real) / (abs(mu) ** 2)
            if lim < best:
                best, arg = lim, complex(mu)
    return best, arg


class StepGuard:
    """The step audit of one run.

    ``due(step)``: an audit is due at the first step and STABILITY_CHECK_EVERY steps after the last.
    ``check(step, t, GP, dt)``: computes mu = sqrt(n) eig(W D) at the slopes GP (per population) and
    returns the refinement factor k (1: the step is accurate, or dt_guard 'off' and stable) or raises
    (StepTooCoarse, ValueError / SimulationUnstable).  After a refinement the step counter of the run
    is multiplied by k, and so is the one of the last audit.

    Attributes: step_kind ('exponential' | 'explicit'), z_accurate, audit (the dict
    SimulationResult.step_audit: z_accurate, tolerance, max_z, mu, refinements (t, old dt, new dt, z),
    checks), eig (the fast spectrum at the first audit).
    """

    def __init__(self, cm, coup, pos, n: int, step_kind: str, dt_guard: str, dt_tol: float,
                 dt_requested: float):
        self.cm, self.coup, self.pos, self.n = cm, coup, pos, n
        self.sq = math.sqrt(n)
        self.step_kind, self.dt_guard, self.dt_tol, self.dt_requested = step_kind, dt_guard, dt_tol, dt_requested
        self.lowrank = coup.kind == "lowrank"
        self.z_accurate = accurate_z(step_kind, dt_tol)
        self.audit = {"z_accurate": self.z_accurate, "tolerance": dt_tol, "max_z": 0.0, "mu": None,
                      "refinements": [], "checks": 0}
        self.eig = None
        self.last_check = None

    def due(self, step: int) -> bool:
        """An audit is due at this step."""
        return self.last_check is None or step - self.last_check >= STABILITY_CHECK_EVERY

    def check(self, step: int, t_now: float, GP, dt_now: float) -> int:
        """Audit dt_now against the fast spectrum at the slopes GP; return the refinement factor k."""
        k = self._audit(t_now, GP, dt_now)
        self.last_check = step * k
        return k

    def _audit(self, t_now, GPc, dt_now) -> int:
        cm, coup, n, audit, z_acc = self.cm, self.coup, self.n, self.audit, self.z_accurate
        step_kind, dt_guard, dt_tol, dt_requested = self.step_kind, self.dt_guard, self.dt_tol, self.dt_requested
        ev = np.asarray(coup.fast_spectrum(self.pos, GPc)) * self.sq
        if self.eig is None:
            self.eig = ev
        audit["checks"] += 1
        if ev.size == 0:
            return 1
        kmax = int(np.argmax(np.abs(ev)))
        mu = complex(ev[kmax])
        z = dt_now * abs(mu)
        where = "at the initial state" if t_now == 0 else f"at t = {t_now:.6g}"
        mu_txt = f"mu = sqrt(n) eig(W D) = {mu.real:.6g}{mu.imag:+.6g}i"
        if dt_guard == "off" or z <= z_acc:
            if step_kind == "explicit":
                lim, mu_s = explicit_dt_limit(ev)
                if dt_now > lim:
                    why = ("implicit=False" if self.lowrank else
                           f"the {coup.kind} coupling (kernel not separable) is explicit")
                    msg = (f"model {cm.name!r}: dt = {dt_now} is unstable {where} (it exceeds the stability "
                           f"limit of a fast coupling mode): the largest stable dt is "
                           f"{lim:.6g} ({why}). The fast coupling mode mu = sqrt(n) eig(W D) = "
                           f"{mu_s.real:.6g}{mu_s.imag:+.6g}i (n = {n}) needs dt <= 2 Re(-mu)/|mu|^2 = "
                           f"{lim:.6g} for explicit Euler; use dt <= {lim:.6g}"
                           + (" or implicit=True" if self.lowrank else ""))
                    raise (ValueError(msg) if t_now == 0 else SimulationUnstable(msg))
            if z > audit["max_z"]:
                audit["max_z"], audit["mu"] = z, mu
            return 1
        dt_ok = z_acc / abs(mu)
        k = int(math.ceil(z / z_acc * (1 + 1e-12)))
        total = dt_requested / (dt_now / k)
        if dt_guard == "refuse" or total > MAX_REFINE * (1 + 1e-9):
            extra = (f" (refining would need dt = {dt_now / k:.4g}, more than MAX_REFINE = {MAX_REFINE} times "
                     f"below the requested {dt_requested})" if dt_guard == "refine" else "")
            raise StepTooCoarse(
                f"model {cm.name!r}: dt = {dt_now:g} does not resolve the fast coupling dynamics {where}: "
                f"{mu_txt} (n = {n}) gives |dt mu| = {z:.3g} > {z_acc:.3g}, the accurate limit of the "
                f"{step_kind} coupling step (relative error {dt_tol:g} of the fast mode); the largest "
                f"accurate dt is {dt_ok:.4g}{extra}. Use dt <= {dt_ok:.4g}, dt_guard='refine' (CLI: the "
                f"default) or, knowingly, dt_guard='off' (--dt-guard off)", dt_now, dt_ok, t_now, mu)
        audit["refinements"].append((t_now, dt_now, dt_now / k, z))
        if z / k > audit["max_z"]:
            audit["max_z"], audit["mu"] = z / k, mu
        return k


def blowup(cm, X, G, t, what, pop=None, implicit=None):
    """Raise SimulationBlowUp naming the time, the population and the likely cause."""
    if pop is None and G is not None:
        for ia, p in enumerate(cm.populations):
            if not np.all(np.isfinite(G[ia])):
                pop = p
                break
    detail = ""
    if pop is not None:
        xa = X[cm.populations.index(pop)]
        nbad = int(np.count_nonzero(~np.isfinite(xa)))
        detail = f"; population {pop!r}: {nbad} of {xa.size} state values non-finite"
    if implicit is None:
        hint = ""
    elif implicit:
        hint = (" The coupling step was exponential (exact for the linearised fast flow), so the blow-up "
                "comes from the intrinsic dynamics (drift / noise) or from a growing fast mode.")
    else:
        hint = (" The coupling was explicit: dt may exceed the stability limit of a fast mode between two "
                "checks, or the intrinsic dynamics blow up; reduce dt or use implicit=True.")
    raise SimulationBlowUp(f"model {cm.name!r}: the particle simulation blew up at t = {t:.6g}: {what} "
                           f"became non-finite (NaN or overflow){detail}.{hint}")
