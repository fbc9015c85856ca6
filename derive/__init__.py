"""balkin.derive: the model DSL, symbolic derivations and code generation.

All SymPy handling of balkin lives in this package; solvers/ and generated/ never import SymPy.
"""
from .dsl import Model, ModelError, Phi, Point, Population, Ring, Torus2, t

__all__ = ["Model", "ModelError", "Phi", "Point", "Population", "Ring", "Torus2", "t"]
