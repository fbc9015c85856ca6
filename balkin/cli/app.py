"""The `balkin` command line: one parser, one sub-command per module of this package, every command
run inside the error funnel (balkin/cli/errors.py).

Each module in COMMAND_MODULES defines ``add_command(subparsers)``; importing them must not import
SymPy (commands that derive import it when they run).  Engines (derive/, solvers/) neither print nor
parse arguments: everything the user sees is written here.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys

from .errors import (EXIT_BUG, EXIT_ERROR, EXIT_SIGINT, EXIT_SIGTERM, EXPECTED_ERRORS, Terminated,
                     check_arguments, describe, interrupted, save_traceback)

#: The sub-command modules, in the order `balkin --help` lists them.
COMMAND_MODULES = ("balkin.cli.models", "balkin.cli.demo", "balkin.cli.simulate", "balkin.cli.solve",
                   "balkin.cli.spectrum", "balkin.cli.verify")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="balkin", description="Kinetic limits of balanced neural networks: "
                                     "derive, generate, solve and verify.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_command(sub)
    return parser


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv=None) -> int:
    """Run one command; never ends in a traceback (balkin/cli/errors.py)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = argv[0] if argv and not argv[0].startswith("-") else "balkin"
    old_term = None
    try:
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):       # not the main thread
        pass
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        cmd = args.command
        check_arguments(args)
        return args.func(args)
    except KeyboardInterrupt as exc:
        print(interrupted(cmd, exc, "SIGINT"), file=sys.stderr)
        return EXIT_SIGINT
    except Terminated as exc:
        print(interrupted(cmd, exc, "SIGTERM"), file=sys.stderr)
        return EXIT_SIGTERM
    except BrokenPipeError:             # e.g. `balkin derive ... | head`
        import os
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_ERROR
    except EXPECTED_ERRORS as exc:
        print(f"balkin {cmd}: error: {describe(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:            # a bug in balkin
        path = save_traceback(exc, argv)
        where = f"; traceback saved to {path}" if path else ""
        print(f"balkin {cmd}: internal error: {type(exc).__name__}: {describe(exc)}{where}; please report "
              "this as a bug with the command line" + (" and that file" if path else ""), file=sys.stderr)
        return EXIT_BUG
    finally:
        if old_term is not None:
            try:
                signal.signal(signal.SIGTERM, old_term)
            except (ValueError, OSError):
                pass


if __name__ == "__main__":
    sys.exit(main())
