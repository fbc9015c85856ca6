"""`balkin init`, `balkin generate` and `balkin derive`: the commands that work on model files
(the symbolic side: they import SymPy when they run, not when the parser is built)."""
from __future__ import annotations

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


def model_file(ref) -> Path:
    """The model file of a command's MODEL: a file path, or a bare name for one of balkin's shipped
    example models (which exist in its source tree only)."""
    if str(ref).isidentifier():
        from derive.loader import model_files
        shipped = {p.stem: p for p in model_files()}
        if ref not in shipped:
            raise FileNotFoundError(f"no model file for {ref!r}: give the model's file, e.g. "
                                    f"PROJECT/models/{ref}.py (shipped models by name: "
                                    f"{', '.join(sorted(shipped)) or 'none in an installed copy'})")
        return shipped[ref]
    return _model_path(ref)


def _models_from(paths):
    from balkin.project import default_model_files
    return [_model_path(p) for p in paths] if paths else default_model_files()


def cmd_init(args) -> int:
    from balkin.project import init_project
    init_project(args.folder)
    return 0


def cmd_generate(args) -> int:
    """Each model file's module goes to the generated/ folder of the file's project (balkin/project.py),
    or to --out; without model files: the current folder's project, else balkin's shipped models."""
    from derive.codegen import generate_source
    from derive.loader import load_model
    from solvers.loading import recorded_path, shown_path

    from balkin.project import generate_target
    stale = 0
    for path in _models_from(args.models):
        model = load_model(path)
        text = generate_source(model, path, recorded_path=recorded_path(path))
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
    from derive.derivation import derive
    from derive.loader import load_model
    from derive.render_text import render
    model = load_model(model_file(args.model))
    text = render(derive(model), latex=args.latex)
    if args.derive_out:
        from solvers.atomic import atomic_write_text
        atomic_write_text(args.derive_out, text if text.endswith("\n") else text + "\n")
        print(f"wrote {args.derive_out}")
    else:
        print(text)
    return 0


def add_command(sub) -> None:
    """Register init, generate and derive."""
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
    d.add_argument("--out", metavar="FILE", dest="derive_out", default=None,
                   help="write to FILE (atomically) instead of printing")
    d.set_defaults(func=cmd_derive)
