"""The independent variables of a model (DESIGN.md §1): the time symbol ``t`` and the position
spaces Point, Ring and Torus2, whose angle symbols theta (receiving neuron) and phi (sending neuron)
are replaced by real symbols of the same name.
"""
from __future__ import annotations

import sympy as sp

from .errors import ModelError

#: The time symbol models use for time-dependent drive or input.
t = sp.Symbol("t", real=True)


def _real(sym: sp.Symbol) -> sp.Symbol:
    return sp.Symbol(sym.name, real=True)


class Space:
    """Base class of the position spaces.  ``theta`` and ``phi`` are tuples of angle symbols
    (the position of the receiving neuron and of the sending neuron)."""

    kind = "space"
    theta: tuple = ()
    phi: tuple = ()

    @property
    def dim(self) -> int:
        return len(self.theta)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(s.name for s in self.theta + self.phi)})"


class Point(Space):
    """No space: every neuron sits at one point."""

    kind = "point"

    def __repr__(self):
        return "Point()"


class Ring(Space):
    """The ring [0, 2 pi) with receiving angle ``theta`` and sending angle ``phi``."""

    kind = "ring"

    def __init__(self, theta: sp.Symbol, phi: sp.Symbol):
        self.theta = (_real(theta),)
        self.phi = (_real(phi),)


class Torus2(Space):
    """The torus [0, 2 pi)^2: ``theta`` and ``phi`` are pairs of angle symbols."""

    kind = "torus2"

    def __init__(self, theta, phi):
        theta, phi = tuple(theta), tuple(phi)
        if len(theta) != 2 or len(phi) != 2:
            raise ModelError("Torus2 needs two receiving angles and two sending angles, "
                             f"got theta={theta}, phi={phi}")
        self.theta = tuple(_real(s) for s in theta)
        self.phi = tuple(_real(s) for s in phi)
