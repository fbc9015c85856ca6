"""Solver sub-commands of the `balkin` CLI (registered by derive.cli).  Each solver module that
offers a command defines ``add_command(subparsers)``; importing this module must not import SymPy."""
from __future__ import annotations

import importlib

COMMAND_MODULES = ("solvers.cli_simulate", "solvers.cli_solve", "solvers.cli_spectrum",
                   "solvers.cli_verify")    # `balkin demo` lives in derive/demo.py (it derives)


def register(subparsers) -> None:
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        mod.add_command(subparsers)
