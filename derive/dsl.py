"""The model DSL: spaces, populations and the model itself.

A model is the network of DESIGN.md §1:

    dx_j = [ f_a(x_j, theta_j, t) + (u_a(theta_j, t) + sqrt(n) r_a(theta_j, t)) e ] dt
           + sigma_a(x_j, theta_j) dW_j,
    r_a(theta, t) = (1/n) sum_b sum_{k in b} w_ab(theta, theta_k) g_b(x_k) + h_a(theta, t).

Every expression is a SymPy expression in the state symbols, the position symbols of the space, the
time symbol ``t`` and the declared parameters.  All symbols are replaced internally by real symbols
of the same name so that derivations (integration, simplification) treat them as real numbers.

The time symbol and the spaces live in derive.coordinates, ModelError in derive.errors and the checks
in derive.validate (which Model runs on construction); all are re-exported here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .coordinates import Point, Ring, Space, Torus2, t
from .errors import ModelError
from .validate import finite_number, is_identifier, validate_and_normalise

__all__ = ["Model", "Population", "ModelError", "Phi", "Space", "Point", "Ring", "Torus2", "t",
           "finite_number", "is_identifier"]


def Phi(expr):
    """The standard normal CDF  Phi(y) = (1 + erf(y / sqrt 2)) / 2  as a SymPy expression."""
    return (1 + sp.erf(expr / sp.sqrt(2))) / 2


@dataclass
class Population:
    """One population a of the network.

    drift      f_a: a scalar (m = 1) or a length-m list of expressions.
    diffusion  sigma_a: a scalar (sigma * identity), a length-m list (diagonal) or an m x q matrix.
    gain       g_a: the activity of one neuron, must depend on the state.
    drive      h_a(theta, t): the O(sqrt n) external drive (inside r_a).
    input      u_a(theta, t): the O(1) external input (a stimulus).
    fraction   alpha_a: population a holds alpha_a * n neurons.
    initial    optional (mean, sd) of the default Gaussian initial distribution per component.
    """

    name: str
    drift: object
    diffusion: object = 1
    gain: object = None
    drive: object = 0
    input: object = 0
    fraction: object = 1
    initial: tuple | None = None


@dataclass
class Model:
    """A balanced network model.  See the module docstring for the equations.

    kernel: dict mapping (receiving, sending) population names to w_ab(theta, phi); a missing pair
    means zero coupling.  parameters: dict mapping parameter symbols to numbers (the values the
    generated code uses by default).  noise: "ito" or "stratonovich".  input_component: index of
    the state component e that receives the synaptic input.
    """

    name: str
    state: list
    space: Space
    populations: list
    kernel: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    noise: str = "ito"
    input_component: int = 0
    description: str = ""

    def __post_init__(self):
        validate_and_normalise(self)

    # filled by validate_and_normalise
    @property
    def m(self) -> int:
        return len(self.state)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.populations]

    def population(self, name: str) -> Population:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)

    def kernel_of(self, a: str, b: str):
        return self.kernel.get((a, b), sp.Integer(0))

    def __repr__(self):
        lines = [f"Model {self.name!r}: state {[s.name for s in self.state]}, space {self.space!r}, "
                 f"noise {self.noise}, synaptic input into {self.state[self.input_component].name}"]
        for p in self.populations:
            lines.append(f"  population {p.name} (fraction {p.fraction}): drift {list(p.drift)}, "
                         f"diffusion {p.diffusion.tolist()}, gain {p.gain}, drive {p.drive}, "
                         f"input {p.input}")
        for a in self.names:
            for b in self.names:
                if (a, b) in self.kernel:
                    lines.append(f"  kernel w[{a},{b}] = {self.kernel[(a, b)]}")
                else:
                    lines.append(f"  kernel w[{a},{b}] = 0  (missing pair: zero coupling)")
        if self.parameters:
            lines.append("  parameters: " + ", ".join(f"{k.name}={v}" for k, v in
                                                      sorted(self.parameters.items(),
                                                             key=lambda kv: kv[0].name)))
        return "\n".join(lines)

    @property
    def parameter_values(self) -> dict[str, float]:
        """Parameter values by name, sorted by name."""
        return {k.name: float(v) for k, v in sorted(self.parameters.items(), key=lambda kv: kv[0].name)}
