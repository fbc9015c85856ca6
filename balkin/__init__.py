"""balkin: kinetic limits of balanced neural networks — the public Python API (docs/api.md).

The functions are in balkin.api; the model DSL (Model, Population, Phi, the spaces, t) is
re-exported from derive on first use, so that ``import balkin`` alone does not import SymPy.
"""
from __future__ import annotations

from .api import (compile, derivation_text, derive, field, kinetic, load, model_from_file, simulate,
                  spectrum, stationary, sweep, verify)

_DSL = ("Model", "ModelError", "Phi", "Point", "Population", "Ring", "Torus2", "t")

__all__ = ["compile", "derivation_text", "derive", "field", "kinetic", "load", "model_from_file",
           "simulate", "spectrum", "stationary", "sweep", "verify", *_DSL]


def __getattr__(name):
    if name in _DSL:
        import derive
        return getattr(derive, name)
    raise AttributeError(f"module 'balkin' has no attribute {name!r}")
