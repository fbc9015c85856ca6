"""Memory estimates made before a run allocates anything, and the refusal when the machine does not
have the memory: InsufficientMemory (a MemoryError) names the estimate and the available memory.

    check_particles_memory(sizes, m, q, coupling_kind, ...)   # solvers.particles.simulate
    check_kinetic_memory(P, npos_total, nx, ...)               # solvers.kinetic.KineticSolver
    check_lattice_memory(P, npos_total, ...)                   # dense lattice W (stationary, spectrum)

Available memory: MemAvailable of /proc/meminfo, lowered to the cgroup (v2) limit when one is set,
else the free physical pages (os.sysconf); when nothing can be read the check is skipped.  The
environment variable BALKIN_MEMORY_AVAILABLE (bytes, or with a suffix K/M/G/T) overrides it.
A run is refused when its estimate exceeds FRACTION of the available memory.  The estimates are
deliberately generous (they count the work arrays and temporaries of the step, not only the state),
and they are upper bounds of the order of magnitude, not exact byte counts."""
from __future__ import annotations

import os

#: Refuse when the estimate exceeds this fraction of the available memory.
FRACTION = 0.9
#: Bytes per float64.
F8 = 8
#: Dense coupling budget of solvers.coupling (kept here so that importing this module is cheap).
DENSE_BUDGET = 256 * 2 ** 20

_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


class InsufficientMemory(MemoryError):
    """A run whose estimated memory exceeds what the machine has available."""

    def __init__(self, message, needed: int, available: int):
        super().__init__(message)
        self.needed, self.available = int(needed), int(available)


def format_bytes(b: float) -> str:
    b = float(b)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(b) < 1024 or unit == "PiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return f"{b:.1f} PiB"     # pragma: no cover


def _parse_bytes(text: str) -> int | None:
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _UNITS and t[-1:] != "" else ""
    try:
        return int(float(t[:-1] if unit else t) * _UNITS[unit])
    except ValueError:
        return None


def _meminfo() -> dict:
    out = {}
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    out[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    except OSError:
        pass
    return out


def _cgroup_room() -> int | None:
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as fh:
            used = int(fh.read().strip())
        return max(0, int(limit) - used)
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes of memory available to this process (None if it cannot be determined)."""
    env = os.environ.get("BALKIN_MEMORY_AVAILABLE")
    if env:
        v = _parse_bytes(env)
        if v is not None:
            return v
    avail = _meminfo().get("MemAvailable")
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    room = _cgroup_room()
    if room is not None:
        avail = room if avail is None else min(avail, room)
    return avail


def check_memory(needed: float, what: str, hint: str = "") -> int:
    """Refuse (InsufficientMemory) if ``needed`` bytes exceed FRACTION of the available memory;
    return the estimate in bytes."""
    needed = int(needed)
    avail = available_memory()
    if avail is not None and needed > FRACTION * avail:
        raise InsufficientMemory(
            f"{what} needs about {format_bytes(needed)} of memory, but only {format_bytes(avail)} is "
            f"available on this machine; nothing was allocated" + (f" ({hint})" if hint else ""),
            needed, avail)
    return needed


# ---- estimates -----------------------------------------------------------------------------------

def particles_memory(sizes, m: int, q, coupling_kind: str = "auto", *, K: int = 0, L: int = 0,
                     pos_dim: int = 1, nrec: int = 0, nbins_total: int = 1,
                     dense_budget: int = DENSE_BUDGET) -> int:
    """Bytes a particle simulation needs.  sizes: neurons per population; m: state dimension;
    q: noise dimension (one int, or one per population); coupling_kind: 'lowrank', 'fft', 'dense'
    or 'auto' (counted as the larger of FFT and dense); K, L: ranks of a separable kernel;
    pos_dim: 0, 1 or 2; nrec: records kept; nbins_total: position bins recorded per population."""
    sizes = [max(0, int(s)) for s in sizes]
    P = len(sizes)
    qs = list(q) if hasattr(q, "__len__") else [int(q)] * P
    N = sum(sizes)
    per = 0
    for s, qa in zip(sizes, qs):
        # state, increments, Wiener increments, static noise tensor, positions, bin index, input,
        # gain, slope, field, implicit buffers, and ~4 m temporaries of the generated expressions
        per += s * (2 * m + qa + m * qa + pos_dim + 8 + 4 * m)
    total = F8 * per
    kind = coupling_kind
    if kind == "lowrank":
        total += F8 * (K + L + 2) * N
    if kind in ("fft", "auto"):
        fft = 16 * (P * P + 4) * max(sizes or [0])
    else:
        fft = 0
    if kind in ("dense", "auto"):
        dense = min(F8 * N * N, dense_budget)
    else:
        dense = 0
    total += max(fft, dense)
    total += F8 * 6 * max(0, int(nrec)) * P * max(1, int(nbins_total))
    return int(total)


def check_particles_memory(sizes, m: int, q, coupling_kind: str = "auto", **kw) -> int:
    """particles_memory(...) against the available memory: raise InsufficientMemory naming the
    estimate and the available memory, else return the estimate (bytes).  Keyword arguments as
    particles_memory (K, L, pos_dim, nrec, nbins_total, dense_budget)."""
    need = particles_memory(sizes, m, q, coupling_kind, **kw)
    return check_memory(need, f"the particle simulation with {sum(int(s) for s in sizes):,} neurons",
                        "reduce --n")


def lattice_memory(P: int, npos_total: int) -> int:
    """Bytes of the dense lattice matrix W (P Npos)^2 and its SVD/eigen work (about 4 copies)."""
    return int(F8 * 4 * (P * npos_total) ** 2)


def check_lattice_memory(P: int, npos_total: int, what: str = "the lattice coupling matrix") -> int:
    return check_memory(lattice_memory(P, npos_total), f"{what} ({P * npos_total:,} lattice points)",
                        "reduce --npos")


def kinetic_memory(P: int, npos_total: int, nx: int, *, nrec: int = 0, ndens: int = 2) -> int:
    """Bytes a kinetic (Fokker-Planck) run needs: about 40 grid-sized work arrays of P Npos nx
    doubles (density, velocities, bands, LU factors, stacked right-hand sides), the recorded
    densities, the recorded moments (nrec records), and the dense lattice W."""
    grid = P * npos_total * max(1, int(nx))
    return int(F8 * (40 + ndens) * grid + F8 * 6 * max(0, int(nrec)) * P * npos_total
               + lattice_memory(P, npos_total))


def check_kinetic_memory(P: int, npos_total: int, nx: int, **kw) -> int:
    need = kinetic_memory(P, npos_total, nx, **kw)
    return check_memory(need, f"the kinetic solve on {P} x {npos_total:,} x {int(nx):,} grid cells",
                        "reduce --nx or --npos, or record less often")


# ---- checks from the command line (the model given by name or CompiledModel) --------------------

def _compiled(model, params=None):
    from .compiled import CompiledModel
    if isinstance(model, CompiledModel):
        return model
    from .loading import model_name
    return CompiledModel(model_name(model) if isinstance(model, str) else model, params)


def check_simulation_memory(model, n, T=None, dt=None, *, coupling: str = "auto", record_every=None,
                            nbins=None, params=None) -> int:
    """Before solvers.particles.simulate(model, n, T, dt, ...): refuse a run that cannot fit in
    memory (InsufficientMemory).  Sizes as simulate: round(alpha_a n) neurons per population."""
    import math
    cm = _compiled(model, params)
    sizes = [max(0, int(math.floor(a * float(n) + 0.5))) for a in cm.alpha]
    q = [int(cm.module.NOISE_DIM[p]) for p in cm.populations]
    kind = coupling
    if kind == "auto" and cm.separable:
        kind = "lowrank"
    nrec = 0
    if T is not None and dt is not None and dt > 0 and T > 0:
        nsteps = T / dt
        if record_every is None:
            nrec = min(nsteps, 10000) if nsteps > 200 else nsteps
        elif record_every > 0:
            nrec = nsteps / max(1.0, round(record_every / dt))
    if cm.pos_dim == 0:
        nbt = 1
    else:
        nb = nbins if nbins is not None else 16
        nbt = int(nb) ** cm.pos_dim
    return check_particles_memory(sizes, cm.m, q, kind, K=cm.K, L=cm.L, pos_dim=cm.pos_dim,
                                  nrec=int(min(nrec, 1e15)) + 1, nbins_total=max(1, nbt))


def check_kinetic_run_memory(model, npos, nx, T=None, dt=None, record_every=None) -> int:
    """Before a KineticSolver(model, npos=npos, nx=nx).run(T, dt, record_every=...)."""
    cm = _compiled(model)
    Npos = 1 if cm.pos_dim == 0 else max(1, int(npos)) ** cm.pos_dim
    nrec = 0
    if T is not None and dt is not None and dt > 0 and T > 0:
        step = record_every if (record_every is not None and record_every > dt) else dt
        nrec = int(min(T / step, 1e15)) + 1
    return check_kinetic_memory(cm.P, Npos, nx, nrec=nrec)
