"""Hashes recorded in generated modules: the model's canonical form, its source file, the generator."""
from __future__ import annotations

import hashlib
from pathlib import Path

import sympy as sp

#: Bump when the generated-module interface changes.
GENERATOR_VERSION = "1"


def canonical_form(model) -> str:
    """A text that is equal for equal models: names, srepr of every expression, parameter values."""
    lines = [f"name={model.name}", f"noise={model.noise}", f"input_component={model.input_component}",
             f"space={model.space.kind}:{[s.name for s in model.space.theta]}:{[s.name for s in model.space.phi]}",
             f"state={[s.name for s in model.state]}"]
    for p in model.populations:
        lines.append(f"population={p.name}")
        for what in ("drift", "diffusion", "gain", "drive", "input", "fraction"):
            lines.append(f"  {what}={sp.srepr(getattr(p, what))}")
        lines.append(f"  initial={p.initial!r}")
    for key in sorted(model.kernel):
        lines.append(f"kernel{key}={sp.srepr(model.kernel[key])}")
    for k, v in model.parameter_values.items():
        lines.append(f"parameter {k}={v!r}")
    return "\n".join(lines)


def model_hash(model) -> str:
    return hashlib.sha256(canonical_form(model).encode()).hexdigest()


def file_hash(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


#: The modules of derive/ whose source shapes generated code (not the CLI, loader or demo).
GENERATOR_MODULES = ("dsl.py", "errors.py", "coordinates.py", "validate.py", "sde.py", "kernels.py", "balance.py",
                     "stationary.py", "field.py", "derivation.py", "printer.py", "codegen.py", "codegen_numba.py",
                     "hashing.py")


def generator_hash() -> str:
    """sha256 over the sources of derive/ that shape generated code (GENERATOR_MODULES)."""
    h = hashlib.sha256(GENERATOR_VERSION.encode())
    here = Path(__file__).parent
    for name in GENERATOR_MODULES:
        f = here / name
        h.update(f.name.encode())
        h.update(f.read_bytes().replace(b"\r\n", b"\n"))
    return h.hexdigest()
