"""The `balkin` command line.  Sub-commands: init, generate, derive, demo (solver commands come from
solvers/)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _model_path(p) -> Path:
    """A model file given on the command line: an existing .py file (clear errors otherwise)."""
    path = Path(p)
    if not str(p).strip():
        raise ValueError("the model file name is empty")
    if path.is_dir():
        raise ValueError(f"{p} is a folder; give a model file, e.g. models/ring_ei.py")
    if not path.exists():
        raise FileNotFoundError(f"model file {p} does not exist")
    if path.suffix != ".py":
        raise ValueError(f"{p} is not a model file (a Python file NAME.py defining `model = Model(...)`)")
    return path


def _models_from(paths):
    from .project import default_model_files
    return [_model_path(p) for p in paths] if paths else default_model_files()


def cmd_init(args) -> int:
    from .project import init_project
    init_project(args.folder)
    return 0


def cmd_generate(args) -> int:
    """Each model file's module goes to the generated/ folder of the file's project (derive/project.py),
    or to --out; without model files: the current folder's project, else balkin's shipped models."""
    from .codegen import generate_source
    from .loader import load_model, relative_path
    from .project import generate_target
    from solvers.loading import shown_path
    stale = 0
    for path in _models_from(args.models):
        model = load_model(path)
        rel = relative_path(path)
        text = generate_source(model, path, recorded_path=rel)
        target = generate_target(path, args.out, create=not args.check)
        if target.resolve() == Path(path).resolve():
            raise ValueError(f"refusing to write the generated module over its own model file {path}; "
                             "choose another --out folder")
        shown = shown_path(target)
        if args.check:
            if not target.exists() or target.read_text() != text:
                print(f"stale: {shown} (regenerate with: balkin generate {shown_path(path)})")
                stale += 1
            else:
                print(f"fresh: {shown}")
        else:
            from solvers.atomic import atomic_write_text
            atomic_write_text(target, text)
            print(f"wrote {shown}")
    return 1 if stale else 0


def cmd_derive(args) -> int:
    from .derivation import derive
    from .render_text import render
    from .loader import load_model, model_files
    ref = args.model
    if str(ref).isidentifier():            # a bare name: a shipped example model (source tree only)
        shipped = {p.stem: p for p in model_files()}
        if ref not in shipped:
            raise FileNotFoundError(f"no model file for {ref!r}: give the model's file, e.g. "
                                    f"PROJECT/models/{ref}.py (shipped models by name: "
                                    f"{', '.join(sorted(shipped)) or 'none in an installed copy'})")
        ref = shipped[ref]
    model = load_model(_model_path(ref))
    text = render(derive(model), latex=args.latex)
    if args.derive_out:
        from solvers.atomic import atomic_write_text
        atomic_write_text(args.derive_out, text if text.endswith("\n") else text + "\n")
        print(f"wrote {args.derive_out}")
    else:
        print(text)
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    grid = {"nx": args.nx, "xmin": args.xmin, "xmax": args.xmax}
    if args.quick:
        return run_demo(sizes=(200, 800), seeds=2, T=4.0, t0=1.5, plots=args.plots,
                        quiet_derivation=True, **grid)
    return run_demo(plots=args.plots, **grid)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="balkin", description="Kinetic limits of balanced neural networks: "
                                     "derive, generate, solve and verify.")
    sub = parser.add_subparsers(dest="command", required=True)
    i = sub.add_parser("init", help="make a project: DIR/models/my_ei.py (an example model), DIR/generated/")
    i.add_argument("folder", metavar="DIR", help="the project folder (created if missing)")
    i.set_defaults(func=cmd_init)
    g = sub.add_parser("generate", help="write PROJECT/generated/NAME.py for model files PROJECT/models/NAME.py")
    g.add_argument("models", nargs="*", help="model files (default: every ./models/*.py of the current "
                   "folder's project, else balkin's shipped models in its source tree)")
    g.add_argument("--check", action="store_true", help="write nothing; exit 1 and name each stale file")
    g.add_argument("--out", help="output folder (default: the generated/ folder of each model file's project)")
    g.set_defaults(func=cmd_generate)
    d = sub.add_parser("derive", help="print every derived equation of a model")
    d.add_argument("model", help="model file, e.g. proj/models/my_ei.py (or a shipped model's name)")
    d.add_argument("--latex", action="store_true", help="a complete LaTeX document instead of text")
    d.add_argument("--out", metavar="FILE", dest="derive_out", default=None, help="write to FILE (atomically) instead of printing")
    d.set_defaults(func=cmd_derive)
    m = sub.add_parser("demo", help="derive, generate, solve and verify ring_ei (about a minute)")
    m.add_argument("--plots", default="balkin-demo", help="folder for the figures (default balkin-demo/)")
    m.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test, not a verification)")
    m.add_argument("--nx", type=int, default=None,
                   help="kinetic x-grid cells (default: automatic, >= 20 cells per standard deviation)")
    m.add_argument("--xmin", type=float, default=None, help="kinetic x-interval start (with --xmax)")
    m.add_argument("--xmax", type=float, default=None, help="kinetic x-interval end (with --xmin)")
    m.set_defaults(func=cmd_demo)
    try:
        from solvers.commands import register  # solver sub-commands (no SymPy at import)
    except ImportError:
        register = None
    if register is not None:
        register(sub)
    return parser


# ---- the error funnel ------------------------------------------------------------------------------
#
# Every command runs inside main(): an expected error (a bad value, a missing file, a refused run, a
# solver that names why it failed) becomes one line "balkin CMD: error: ..." and exit status 2;
# Ctrl-C exits 130 and SIGTERM 143 with one line saying where the run was and what was written; any
# other exception is a bug: one line, the traceback saved to a file, and a request to report it.

#: Exceptions that are errors of the input or of the run, not of balkin: one line, exit status 2.
EXPECTED_ERRORS = (ValueError, RuntimeError, OSError, MemoryError, FloatingPointError, OverflowError,
                   SyntaxError, ImportError)
EXIT_ERROR, EXIT_BUG, EXIT_SIGINT, EXIT_SIGTERM = 2, 3, 130, 143


class Terminated(BaseException):
    """Raised by the SIGTERM handler (a BaseException, so no ``except Exception`` swallows it)."""


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _describe(exc: BaseException) -> str:
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


def _interrupted(cmd: str, exc: BaseException, signame: str) -> str:
    from solvers.atomic import WRITTEN
    t = _run_time(exc)
    where = f" at t = {t:g}" if t is not None else ""
    done = f"wrote {', '.join(WRITTEN)} before that; nothing else written" if WRITTEN else "nothing written"
    return f"balkin {cmd}: interrupted ({signame}){where}, {done}"


def _save_traceback(exc: BaseException, argv) -> str | None:
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


def _check_arguments(args) -> None:
    """Checks common to every command, made before anything runs: numbers are finite, --param
    values are numbers, and the output paths (--json, --npz, --plots) can be written."""
    import math
    for key, value in vars(args).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"--{key.replace('_', '-')} must be a finite number, got {value}")
    for item in getattr(args, "param", None) or ():
        if not isinstance(item, str):
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--param expects NAME=VALUE, got {item!r}")
        try:
            v = float(value)
        except ValueError:
            raise ValueError(f"--param {name.strip()}: {value.strip()!r} is not a number") from None
        if not math.isfinite(v):
            raise ValueError(f"--param {name.strip()}: must be a finite number, got {value.strip()}")
    try:
        from solvers.output import check_output_args
    except ImportError:
        return
    check_output_args(args)


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv=None) -> int:
    """Run one command; never ends in a traceback (see the error funnel above)."""
    import signal
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
        _check_arguments(args)
        return args.func(args)
    except KeyboardInterrupt as exc:
        print(_interrupted(cmd, exc, "SIGINT"), file=sys.stderr)
        return EXIT_SIGINT
    except Terminated as exc:
        print(_interrupted(cmd, exc, "SIGTERM"), file=sys.stderr)
        return EXIT_SIGTERM
    except BrokenPipeError:             # e.g. `balkin derive ... | head`
        import os
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_ERROR
    except EXPECTED_ERRORS as exc:
        print(f"balkin {cmd}: error: {_describe(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:            # a bug in balkin
        path = _save_traceback(exc, argv)
        where = f"; traceback saved to {path}" if path else ""
        print(f"balkin {cmd}: internal error: {type(exc).__name__}: {_describe(exc)}{where}; please report "
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
