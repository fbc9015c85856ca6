"""The error funnel of the `balkin` command line.

Every command runs inside balkin.cli.main(): an expected error (a bad value, a missing file, a
refused run, a solver that names why it failed) becomes one line "balkin CMD: error: ..." and exit
status 2; Ctrl-C exits 130 and SIGTERM 143 with one line saying where the run was and what was
written; any other exception is a bug: one line, the traceback saved to a file, and a request to
report it.
"""
from __future__ import annotations

import os
import sys

#: Exceptions that are errors of the input or of the run, not of balkin: one line, exit status 2.
EXPECTED_ERRORS = (ValueError, RuntimeError, OSError, MemoryError, FloatingPointError, OverflowError,
                   SyntaxError, ImportError)
EXIT_ERROR, EXIT_BUG, EXIT_SIGINT, EXIT_SIGTERM = 2, 3, 130, 143


class Terminated(BaseException):
    """Raised by the SIGTERM handler (a BaseException, so no ``except Exception`` swallows it)."""


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, MemoryError) and type(exc) is MemoryError:
        msg = _one_line(exc) or "the machine ran out of memory"
        return f"out of memory: {msg}"
    return _one_line(exc) or type(exc).__name__


def _run_time(exc: BaseException):
    """The simulated time ``t`` of the innermost solver frame at the interruption (None if unknown)."""
    import math
    tb, found = exc.__traceback__, None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_globals.get("__name__", "").startswith("solvers."):
            for key in ("t", "t_now"):
                v = frame.f_locals.get(key)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    found = float(v)
                    break
        tb = tb.tb_next
    return found


def interrupted(cmd: str, exc: BaseException, signame: str) -> str:
    from solvers.atomic import WRITTEN
    t = _run_time(exc)
    where = f" at t = {t:g}" if t is not None else ""
    done = f"wrote {', '.join(WRITTEN)} before that; nothing else written" if WRITTEN else "nothing written"
    return f"balkin {cmd}: interrupted ({signame}){where}, {done}"


def save_traceback(exc: BaseException, argv) -> str | None:
    import datetime
    import os
    import tempfile
    import traceback
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(tempfile.gettempdir(), f"balkin-traceback-{stamp}-{os.getpid()}.txt")
    try:
        with open(path, "w") as fh:
            fh.write(f"command: balkin {' '.join(argv)}\n")
            fh.write(f"python: {sys.version.split()[0]}\n\n")
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return path
    except OSError:
        return None


def check_arguments(args) -> None:
    """Checks common to every command, made before anything runs: numbers are finite, --param
    values are numbers, and the output paths (--json, --npz, --plots) can be written."""
    import math
    for key, value in vars(args).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"--{key.replace('_', '-')} must be a finite number, got {value}")
    for item in getattr(args, "param", None) or ():
        if isinstance(item, str):
            param_value(item)
    check_output_args(args)


def param_value(item: str, expects: str = "NAME=VALUE") -> tuple[str, float]:
    """One `--param NAME=VALUE`: (NAME, VALUE as a finite float), or a ValueError saying what is wrong."""
    import math
    name, sep, value = str(item).partition("=")
    if not sep or not name.strip():
        raise ValueError(f"--param expects {expects}, got {item!r}")
    try:
        v = float(value)
    except ValueError:
        raise ValueError(f"--param {name.strip()}: {value.strip()!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"--param {name.strip()}: must be a finite number, got {value.strip()}")
    return name.strip(), v


def param_dict(items) -> dict:
    """{NAME: VALUE} of repeated `--param NAME=VALUE` options (None: none)."""
    return dict(param_value(item) for item in items or ())


#: The output options of the commands: attribute -> (flag, file or dir).
OUTPUT_OPTIONS = {"derive_out": ("--out", "file"), "json": ("--json", "file"), "npz": ("--npz", "file"),
                  "csv": ("--csv", "file"), "plots": ("--plots", "dir")}


def check_output_args(args) -> None:
    """Check every output path of a parsed command line (--json, --npz, --plots) before the run, and
    that no two of them name the same file."""
    from solvers.output import OutputPathError, check_output_dir, check_output_file
    seen = {}
    for attr, (flag, kind) in OUTPUT_OPTIONS.items():
        value = getattr(args, attr, None)
        if value is None or value is False or (kind == "dir" and value == ""):
            continue                    # --plots "": no figures (balkin demo, verify)
        if kind == "file":
            check_output_file(value, flag)
        else:
            check_output_dir(value, flag)
        key = os.path.abspath(os.path.expanduser(os.fspath(value)))
        if key in seen:
            raise OutputPathError(f"{seen[key]} and {flag} name the same path {value}")
        seen[key] = flag
