"""Lattice fields at arbitrary positions and averaged over the particles' position bins.

A field f sampled on the uniform lattice CompiledModel.grid(side) (ring: theta_j = 2 pi j / side; torus:
the product lattice, index i1 * side + i2) is continued by its trigonometric interpolant
    f(theta) = sum_k c_k e^{i k theta},   c = FFT(f) / side,   |k| <= side / 2,
(the Nyquist mode, for even side, as c cos(side theta / 2), so that the interpolant is real), per angle
on the torus.  It is exact for fields whose Fourier modes lie below side / 2 per angle: on a ring with a
cosine kernel the multiplier lambda lies in Range(W) + span(h), so for linear models the means and
covariances are such fields; otherwise the error is the size of the modes left out.

``bin_means`` averages values at the neurons' own positions over the neurons' own bins
(solvers.coupling.bin_index): a lattice prediction interpolated to the neurons and averaged this way is
the average the particles take, whatever the number of lattice points per bin.
"""
from __future__ import annotations

import numpy as np


def _modes(side: int, theta) -> np.ndarray:
    """(side, n) values e^{i k theta} of the interpolant's modes k (numpy FFT order), Nyquist as cos."""
    k = np.fft.fftfreq(side, 1.0 / side)
    E = np.exp(1j * k[:, None] * np.asarray(theta, float)[None, :])
    if side % 2 == 0:
        E[side // 2] = np.cos(side / 2 * np.asarray(theta, float))
    return E


def interpolate(field, side: int, pos_dim: int, positions) -> np.ndarray:
    """The trigonometric interpolant (module docstring) of ``field`` (..., N) on the lattice of ``side``
    points per angle, at ``positions`` (a tuple of pos_dim arrays (n,)): (..., n).  Without space
    (pos_dim 0, N = 1) the one value is broadcast to the n neurons given by len(positions[0]) or 1."""
    f = np.asarray(field, float)
    if pos_dim == 0:
        n = len(positions[0]) if positions else 1
        return np.broadcast_to(f[..., :1], f.shape[:-1] + (n,)).copy()
    if pos_dim == 1:
        c = np.fft.fft(f, axis=-1) / side
        return np.real(c @ _modes(side, positions[0]))
    if pos_dim != 2:
        raise ValueError(f"interpolation on {pos_dim} angles is not defined")
    c = np.fft.fft2(f.reshape(f.shape[:-1] + (side, side)), axes=(-2, -1)) / side ** 2
    E1, E2 = _modes(side, positions[0]), _modes(side, positions[1])
    return np.real(np.einsum("...kl,ki,li->...i", c, E1, E2, optimize=True))


def bin_means(values, positions, nbins: int, pos_dim: int) -> np.ndarray:
    """Mean of values (..., n) over the neurons of each position bin (bin_index of the positions):
    (..., nbins ** pos_dim); without space the mean over all neurons (..., 1)."""
    v = np.asarray(values, float)
    if pos_dim == 0:
        return v.mean(axis=-1, keepdims=True)
    from .coupling import bin_index
    idx = bin_index([np.mod(p, 2 * np.pi) for p in positions], nbins, pos_dim)
    nb = nbins ** pos_dim
    onehot = np.zeros((len(idx), nb))
    onehot[np.arange(len(idx)), idx] = 1.0
    counts = onehot.sum(axis=0)
    if np.any(counts == 0):
        raise ValueError(f"a position bin holds no neuron ({nbins} bins per angle for {len(idx)} neurons)")
    return (v @ onehot) / counts


def binned(field, side: int, pos_dim: int, positions, nbins: int) -> np.ndarray:
    """The lattice field (..., N) interpolated to the neurons and averaged over their bins."""
    return bin_means(interpolate(field, side, pos_dim, positions), positions, nbins, pos_dim)
