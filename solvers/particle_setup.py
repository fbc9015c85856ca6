"""Setup of a particle run (solvers.particles.simulate): the model, the argument checks, the population
sizes, the memory check, the positions, the initial states and the position bins of the records.

Sizes: n_a = floor(alpha_a n + 1/2).  Positions: the regular lattice theta_j = 2 pi j / n_a (ring), a
side x side lattice (torus, n_a = side^2), or i.i.d. uniform on [0, 2 pi)^d.  Initial states: the
model's INITIAL (mean, sd) Gaussian per component (else N(0, 1)), a dict or a callable.

The random stream: one Generator (PCG64, ``seed``) draws the uniform positions (if asked), then the
initial states, population after population; the run then draws the Brownian increments from it.
No SymPy, no printing.
"""
from __future__ import annotations

import math
import types
from dataclasses import dataclass

import numpy as np

from .compiled import CompiledModel
from .coupling import bin_index
from .resources import check_particles_memory


def resolve_model(model, params) -> CompiledModel:
    """A CompiledModel from a CompiledModel (params override its parameters), a model name or a
    generated module."""
    if isinstance(model, CompiledModel):
        if params:
            return CompiledModel(model.module, {**model.params, **params})
        return model
    if isinstance(model, (str, types.ModuleType)):
        return CompiledModel(model, params)
    if hasattr(model, "MODEL_NAME") and hasattr(model, "POPULATIONS"):
        return CompiledModel(model, params)
    raise TypeError(f"model must be a CompiledModel, a model name or a generated module, got {type(model)}")


def check_run(cm, n, T, dt, *, scheme, positions, jacobian_every, dt_guard):
    """Validate the run arguments; return (n, T, dt, nsteps, jacobian_every) with nsteps = T / dt
    (T must be a whole number of steps)."""
    n = int(n)
    T, dt = float(T), float(dt)
    if n < 1:
        raise ValueError(f"n = {n} must be a positive integer")
    if not (math.isfinite(T) and T > 0 and math.isfinite(dt) and dt > 0):
        raise ValueError(f"T = {T} and dt = {dt} must be positive and finite")
    nsteps = int(round(T / dt))
    if nsteps < 1 or abs(nsteps * dt - T) > 1e-9 * max(T, 1.0):
        raise ValueError(f"T = {T} is not a whole number of steps dt = {dt} (T/dt = {T / dt})")
    if scheme not in ("euler", "milstein"):
        raise ValueError(f"scheme must be 'euler' or 'milstein', got {scheme!r}")
    if scheme == "milstein":
        missing = [p for p in cm.populations if not cm.module.MILSTEIN.get(p, False)]
        if missing:
            raise ValueError(f"model {cm.name!r}: the derivation provides no Milstein terms for population(s) "
                             f"{missing} (the noise is not commutative); use scheme='euler'")
    if positions not in ("lattice", "uniform"):
        raise ValueError(f"positions must be 'lattice' or 'uniform', got {positions!r}")
    jacobian_every = int(jacobian_every)
    if jacobian_every < 1:
        raise ValueError(f"jacobian_every = {jacobian_every} must be >= 1")
    if dt_guard not in ("refine", "refuse", "off"):
        raise ValueError(f"dt_guard must be 'refine', 'refuse' or 'off', got {dt_guard!r}")
    return n, T, dt, nsteps, jacobian_every


def make_positions(model, n_a: int, kind: str, rng):
    """Neuron positions of one population: a tuple of pos_dim arrays (n_a,) (lattice or uniform)."""
    if model.pos_dim == 0:
        return ()
    if kind == "lattice":
        if model.pos_dim == 1:
            return (2 * np.pi * np.arange(n_a) / n_a,)
        side = math.isqrt(n_a)
        if side * side != n_a:
            raise ValueError(f"a lattice on the torus needs a square number of neurons per population, "
                             f"got n_a = {n_a}; choose n (and the fractions) so that alpha_a n is a square, "
                             f"or use positions='uniform'")
        return model.grid(side)
    return tuple(rng.uniform(0.0, 2 * np.pi, n_a) for _ in range(model.pos_dim))


def initial_states(model, pop, m, n_a, pos, init, rng) -> np.ndarray:
    """Initial states (m, n_a) of population pop: x = mean + sd N(0, 1) (INITIAL, else mean 0, sd 1),
    init[pop], or init(rng, pop, m, n_a, positions); checked for shape and finiteness."""
    if init is None:
        spec = model.module.INITIAL.get(pop) if isinstance(model.module.INITIAL, dict) else None
        x = rng.standard_normal((m, n_a))
        if spec is not None:
            mean, sd = spec
            mean = np.broadcast_to(np.asarray(mean, float), (m,))[:, None]
            sd = np.broadcast_to(np.asarray(sd, float), (m,))[:, None]
            x = mean + sd * x
    elif callable(init):
        x = init(rng, pop, m, n_a, pos)
    elif isinstance(init, dict):
        if pop not in init:
            raise ValueError(f"init has no initial states for population {pop!r}")
        x = init[pop]
    else:
        raise TypeError("init must be None, a dict pop -> array (m, n_a) or a callable(rng, pop, m, n_a, positions)")
    x = np.array(x, dtype=float)
    if x.ndim == 1 and m == 1:
        x = x[None, :]
    if x.shape != (m, n_a):
        raise ValueError(f"initial states of population {pop!r} have shape {x.shape}, expected ({m}, {n_a})")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"initial states of population {pop!r} are not all finite")
    return np.ascontiguousarray(x)


@dataclass
class ParticleSetup:
    """The state of a run before its first step.

    pops, P, m, e, q (noise dimension per population), sizes (n_a), rng (the Generator after the
    positions and initial states), pos (per population a tuple of position arrays), X (per population
    the states (m, n_a)), nb (bins per angle), nbt (bins in all), bpos (bin centres as a tuple of
    arrays), bins (per population the bin of each neuron, None without space), counts (neurons per
    bin), bin_centres ((nbins,) on the ring, (nbins^2, 2) on the torus, [0.0] without space).
    """

    pops: tuple
    P: int
    m: int
    e: int
    q: list
    sizes: list
    rng: np.random.Generator
    pos: list
    X: list
    nb: int
    nbt: int
    bpos: tuple
    bins: list
    counts: list
    bin_centres: np.ndarray


def setup_particles(cm, n: int, nsteps: int, *, seed, init, positions: str, nbins, coupling) -> ParticleSetup:
    """Sizes n_a = floor(alpha_a n + 1/2), the memory check (InsufficientMemory before allocating),
    the Generator, the positions, the initial states and the position bins (bins centred on the
    lattice cm.grid(nb); every bin must hold a neuron)."""
    pops = cm.populations
    P, m, e = cm.P, cm.m, cm.e
    q = [int(cm.module.NOISE_DIM[p]) for p in pops]
    sizes = [int(math.floor(a * n + 0.5)) for a in cm.alpha]
    for p, s in zip(pops, sizes):
        if s < 1:
            raise ValueError(f"population {p!r} gets round(alpha n) = {s} neurons at n = {n}; increase n")
    # refuse before allocating when the machine cannot hold the run (InsufficientMemory)
    check_particles_memory(sizes, m, q, coupling, K=cm.K, L=cm.L, pos_dim=cm.pos_dim,
                           nrec=min(nsteps, 10000), nbins_total=cm.n_positions(nbins or 16))
    rng = np.random.default_rng(seed)
    pos = [make_positions(cm, s, positions, rng) for s in sizes]
    X = [initial_states(cm, p, m, s, ps, init, rng) for p, s, ps in zip(pops, sizes, pos)]
    nb, nbt, bpos, bins, counts, bin_centres = position_bins(cm, sizes, pos, nbins)
    return ParticleSetup(pops=pops, P=P, m=m, e=e, q=q, sizes=sizes, rng=rng, pos=pos, X=X, nb=nb, nbt=nbt,
                         bpos=bpos, bins=bins, counts=counts, bin_centres=bin_centres)


def position_bins(cm, sizes, pos, nbins):
    """The record bins: returns (nb, nbt, bpos, bins, counts, bin_centres); nb defaults to
    min(n_a, 16) on the ring, min(side, 8) per angle on the torus, 1 without space."""
    pops = cm.populations
    if cm.pos_dim == 0:
        if nbins not in (None, 1):
            raise ValueError(f"model {cm.name!r} has no space: nbins must be 1, got {nbins}")
        nb = 1
    else:
        if nbins is None:
            nb = min(min(sizes), 16) if cm.pos_dim == 1 else min(math.isqrt(min(sizes)), 8)
        else:
            nb = int(nbins)
        if nb < 1:
            raise ValueError(f"nbins = {nb} must be >= 1")
    nbt = cm.n_positions(nb)
    bpos = cm.grid(nb)
    bins, counts = [], []
    for p, s, ps in zip(pops, sizes, pos):
        if cm.pos_dim == 0:
            bins.append(None)
            counts.append(np.array([float(s)]))
            continue
        idx = bin_index(ps, nb, cm.pos_dim)
        cnt = np.bincount(idx, minlength=nbt).astype(float)
        if np.any(cnt == 0):
            raise ValueError(f"population {p!r}: position bin {int(np.flatnonzero(cnt == 0)[0])} of {nbt} holds "
                             f"no neuron (n_a = {s}); use fewer bins (nbins) or more neurons")
        bins.append(idx)
        counts.append(cnt)
    if cm.pos_dim == 0:
        bin_centres = np.array([0.0])
    elif cm.pos_dim == 1:
        bin_centres = np.asarray(bpos[0], float)
    else:
        bin_centres = np.stack(bpos, axis=1)
    return nb, nbt, bpos, bins, counts, bin_centres


def generated_functions(cm, kinds=("drift", "diffusion", "gain", "gain_slope", "input", "drive", "milstein")):
    """kind -> [the generated kind_pop for each population] (None where the module lacks it)."""
    return {kind: [cm.fn(kind, p) for p in cm.populations] for kind in kinds}
