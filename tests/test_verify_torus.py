"""`balkin verify` on the torus: position bins on the torus lattice (solvers/verify.py) agree with the
particles' own bins, and the verification of a linear torus model passes at small sizes (slow)."""
import functools
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from derive import Model, Phi, Population, Torus2
from derive.codegen import compile_module
from solvers.compiled import CompiledModel
from solvers.coupling import bin_index
from solvers.particle_setup import make_positions, position_bins
from solvers.verify import SUB, VerifySettings, _bin_average, _bin_centre, _in_bin, verify


@functools.lru_cache(maxsize=None)
def torus_ei():
    """E and I on the torus, f = -x, sigma = 1, g = Phi, kernels +-J_ab (1 + eps (cos(theta1 - phi1) +
    cos(theta2 - phi2))) with ei_linear's J and eps = 1/2 (every weight keeps its sign), drive
    H_a (1 + cos(theta1)/10 + cos(theta2)/20): the balanced state varies along both angles
    (gbar_E over [0.14, 0.50]) and the finite-n means differ between all four bins of nbins = 2."""
    x = sp.Symbol("x")
    t1, t2, p1, p2 = sp.symbols("theta1 theta2 phi1 phi2")
    c = sp.cos(t1 - p1) + sp.cos(t2 - p2)
    J = {("E", "E"): 1, ("E", "I"): -2, ("I", "E"): 1, ("I", "I"): -sp.Rational(9, 5)}
    kern = {ab: Jab * (1 + c / 2) for ab, Jab in J.items()}
    pops = [Population(a, drift=-x, diffusion=1, gain=Phi(x), drive=H * (1 + sp.cos(t1) / 10 + sp.cos(t2) / 20))
            for a, H in (("E", sp.Rational(1, 10)), ("I", sp.Rational(3, 50)))]
    return CompiledModel(compile_module(Model(name="torus_ei", state=[x], space=Torus2((t1, t2), (p1, p2)),
                                              populations=pops, kernel=kern)))


class _Lattice:
    """The position lattice of a model on the torus (pos_dim 2) or the ring (1), without compiling one:
    CompiledModel's own grid and n_positions."""
    name, populations = "lattice", ("E",)
    grid, n_positions = CompiledModel.grid, CompiledModel.n_positions

    def __init__(self, pos_dim):
        self.pos_dim = pos_dim


@pytest.mark.parametrize("nbins", [1, 2, 3, 4])
def test_bin_average_is_the_mean_over_the_solver_points_in_each_particle_bin(nbins, rng):
    """Torus and ring: _bin_average of an arbitrary lattice field equals the plain mean over the
    solver points that the particles' binning (solvers.coupling.bin_index) puts in each bin (exactly
    SUB^pos_dim points each), in the particles' bin order; _bin_centre picks the point at each
    particle bin centre."""
    for pos_dim in (1, 2):
        cm = _Lattice(pos_dim)
        grid = cm.grid(nbins * SUB)
        N = len(grid[0])
        field = rng.standard_normal((3, N))
        idx = bin_index(grid, nbins, pos_dim)
        nbt = nbins ** pos_dim
        expect = np.stack([field[:, idx == b].mean(axis=1) for b in range(nbt)], axis=1)
        assert np.all(np.bincount(idx, minlength=nbt) == SUB ** pos_dim)
        np.testing.assert_allclose(_bin_average(field, nbins, pos_dim), expect, rtol=0, atol=1e-14)
        # the bin centres as the particles define them: CompiledModel.grid(nbins)
        bc = cm.grid(nbins)
        at = [np.flatnonzero(np.all([np.isclose(g, c[b]) for g, c in zip(grid, bc)], axis=0))[0] for b in range(nbt)]
        np.testing.assert_array_equal(_bin_centre(field, nbins, pos_dim), field[:, at])


def test_in_bin_partitions_the_neurons_as_the_particle_records_do():
    """_in_bin (verify's masks for the W1 distances and the samples) agrees with the record bins of
    solvers.particle_setup.position_bins, on the lattice and for uniform positions."""
    cm = _Lattice(2)
    rng = np.random.default_rng(5)
    for kind, n_a in (("lattice", 400), ("uniform", 500)):
        pos = make_positions(cm, n_a, kind, rng)
        nb, nbt, bpos, bins, counts, centres = position_bins(cm, [n_a], [pos], 4)
        masks = np.array([_in_bin(pos, b, 4, 2) for b in range(nbt)])
        assert np.all(masks.sum(axis=0) == 1)
        np.testing.assert_array_equal(masks.sum(axis=1), counts[0])
        np.testing.assert_array_equal(np.argmax(masks, axis=0), bins[0])


@pytest.mark.slow
def test_verify_passes_on_a_torus_model_at_small_sizes(tmp_path):
    """torus_ei, nbins = 2 per angle (4 bins, a 10 x 10 solver lattice), n = 576 and 2304 (24^2, 48^2),
    4 seeds: PASS, and the particle means at the largest size differ between the four bins as the
    finite-n prediction does (so a wrong bin order could not pass)."""
    rep = verify(torus_ei(), VerifySettings(sizes=(576, 2304), seeds=4, T=8.0, t0=3.0, dt=0.01, nbins=2),
                 progress=None)
    assert rep.passed, rep.failure_lines()
    e = rep.per_n[-1]["mean"]
    assert e["particles"].shape == (2, 4) and np.asarray(rep.bins).shape == (4, 2)
    spread = np.ptp(e["finite_n"], axis=1)
    assert np.all(spread > 20 * e["se"].max())
    import io

    from balkin.cli.verify_report import print_report, write_plots
    buf = io.StringIO()
    print_report(rep, file=buf)
    assert "verdict: PASS" in buf.getvalue()
    pytest.importorskip("matplotlib")
    files = write_plots(rep, tmp_path)
    assert len(files) == 3 and all(Path(f).exists() for f in files)
