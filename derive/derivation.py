"""All derivations of a model, gathered in one object (the input of printing and code generation)."""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from . import balance, field as field_mod, kernels, sde, stationary


@dataclass
class PopulationDerivation:
    name: str
    ito_drift: sp.Matrix
    diffusion: sp.Matrix
    diffusion_tensor: sp.Matrix
    fp_velocity: sp.Matrix        # V = f + (u + lambda_a) e - div(D/2), with the symbol lambda_a
    gain: sp.Expr
    gain_slope: sp.Expr
    gain_generator: sp.Expr
    milstein: list | None
    milstein_refusal: str
    stationary: stationary.StationaryDensity | None
    linear_additive: bool
    linear_reason: str
    field: field_mod.FieldSystem | None
    mean_rhs: sp.Matrix
    fluctuation_drift: sp.Matrix
    deterministic: bool = False    # diffusion identically zero
    stationary_skipped: str = ""   # why the stationary density was not derived ('' if it was)


@dataclass
class Derivation:
    """Everything derived from one model.  Symbolic in the parameters."""

    model: object
    populations: dict
    kernels: kernels.KernelStructure
    balance: balance.BalanceSystem | None
    modes: list = field(default_factory=list)   # [(psi atoms, block of W D)]


def derive(model) -> Derivation:
    """Derive the Itô drift, generator, Fokker–Planck flux form, Milstein terms, stationary density,
    neural field, kernel separation, balance constraints, multiplier equation and the fast-manifold
    matrix of ``model``."""
    pops = {}
    for pop in model.populations:
        f = sde.ito_drift(model, pop)
        try:
            mil, refusal = sde.milstein_terms(model, pop), ""
        except sde.NonCommutativeNoiseError as exc:
            mil, refusal = None, str(exc)
        lin, why = field_mod.linear_additive(model, pop)
        fs = field_mod.field_system(model, pop) if lin else None
        mean_rhs, fluct, _, _ = balance.mean_fluctuation(model, pop)
        pops[pop.name] = PopulationDerivation(
            name=pop.name, ito_drift=f, diffusion=pop.diffusion,
            diffusion_tensor=sde.diffusion_tensor(pop),
            fp_velocity=sde.fp_velocity(model, pop, sp.Symbol(f"lambda_{pop.name}", real=True)),
            gain=pop.gain, gain_slope=balance.gain_slope(model, pop),
            gain_generator=balance.gain_generator(model, pop),
            milstein=mil, milstein_refusal=refusal,
            stationary=stationary.stationary_density(model, pop),
            linear_additive=lin, linear_reason=why, field=fs,
            mean_rhs=mean_rhs, fluctuation_drift=fluct,
            deterministic=stationary.is_deterministic(pop),
            stationary_skipped=stationary.skip_reason(model, pop))
    ks = kernels.kernel_structure(model)
    bal, blocks = None, []
    if ks.separable:
        bal = balance.balance_system(model, ks)
        blocks = balance.mode_blocks(model, ks, bal.homogeneous_multiplier[1])
    return Derivation(model, pops, ks, bal, blocks)


def equations(d: Derivation):
    """The derived equations as (title, SymPy object) pairs, in reading order."""
    model = d.model
    out = []
    x = model.state
    for name, pd in d.populations.items():
        pop = model.population(name)
        out.append((f"[{name}] Itô drift f", pd.ito_drift))
        out.append((f"[{name}] diffusion sigma", pd.diffusion))
        out.append((f"[{name}] Fokker–Planck flux J = V p - (1/2) D grad p, velocity V (with u + lambda)",
                    pd.fp_velocity))
        out.append((f"[{name}] Fokker–Planck flux, (1/2) D = (1/2) sigma sigma^T", pd.diffusion_tensor / 2))
        p = sp.Function("p", real=True)(*x)
        out.append((f"[{name}] Fokker–Planck equation d_t p =",
                    sde.fokker_planck(model, pop, p, sp.Symbol(f"lambda_{name}", real=True))))
        out.append((f"[{name}] gain g", pd.gain))
        out.append((f"[{name}] gain slope dg/d{x[model.input_component].name}", pd.gain_slope))
        out.append((f"[{name}] generator on the gain L g", pd.gain_generator))
        if pd.milstein is not None:
            out.append((f"[{name}] Milstein tensor L^j sigma_ik [i][j][k]", sp.Array(pd.milstein)))
        else:
            out.append((f"[{name}] Milstein: refused", sp.Symbol("noncommutative")))
        out.append((f"[{name}] mean equation d_t mbar =", pd.mean_rhs))
        out.append((f"[{name}] fluctuation drift", pd.fluctuation_drift))
        if pd.stationary_skipped:
            out.append((f"[{name}] stationary density: skipped ({pd.stationary_skipped})",
                        sp.Symbol("none")))
        if pd.stationary is not None:
            st = pd.stationary
            if st.closed_form:
                out.append((f"[{name}] stationary log density (fixed lambda_{name})", st.log_density()))
            else:
                out.append((f"[{name}] stationary potential integrand (quadrature needed)",
                            st.integrand0 + st.lam * st.integrand1))
        if pd.field is not None:
            fs = pd.field
            out.append((f"[{name}] neural field d_t m =", fs.mean_rhs))
            out.append((f"[{name}] neural field d_t C =", fs.cov_rhs))
            out.append((f"[{name}] G(m, C) = E g" + ("" if fs.G is not None else " (quadrature)"),
                        fs.G if fs.G is not None else sp.Symbol("GaussHermite")))
        else:
            out.append((f"[{name}] neural field: not exact ({pd.linear_reason})", sp.Symbol("none")))
    ks = d.kernels
    if ks.separable:
        for (a, b), s in ks.separations.items():
            out.append((f"kernel w[{a},{b}] separated, rank {s.rank}", s.reconstruct()))
        out.append(("Range(W) basis psi(theta)", sp.Matrix([ks.psi])))
        out.append(("constraint matrix B[(a,k),(b,l)] = alpha_b C_ab[k,l]", d.balance.B))
        for eq in d.balance.constraints:
            out.append(("balance (B)", eq))
        for a, r in d.balance.drive_residual.items():
            if r != 0:
                out.append((f"drive h_{a} outside span(psi): residual", r))
        for eq in d.balance.multiplier:
            out.append(("multiplier (M)", eq))
        for atoms, block in d.modes:
            out.append((f"fast matrix W D, mode {atoms}", block))
    else:
        for pair, why in ks.failures.items():
            out.append((f"kernel w[{pair[0]},{pair[1]}] does not split ({why}); handled numerically",
                        model.kernel[pair]))
    return out
