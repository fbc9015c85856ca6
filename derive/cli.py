"""The `balkin` command line.  Sub-commands: generate, derive (solver commands come from solvers/)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _models_from(paths):
    from .loader import model_files
    return [Path(p) for p in paths] if paths else model_files()


def cmd_generate(args) -> int:
    from .codegen import generate_source
    from .loader import load_model, project_root, relative_path
    out_dir = Path(args.out) if args.out else project_root() / "generated"
    stale = 0
    for path in _models_from(args.models):
        model = load_model(path)
        rel = relative_path(path)
        text = generate_source(model, path, recorded_path=rel)
        target = out_dir / f"{model.name}.py"
        if target.resolve() == Path(path).resolve():
            raise ValueError(f"refusing to write the generated module over its own model file {path}; "
                             "choose another --out folder")
        if args.check:
            if not target.exists() or target.read_text() != text:
                print(f"stale: {target} (regenerate with: balkin generate {rel})")
                stale += 1
            else:
                print(f"fresh: {target}")
        else:
            target.write_text(text)
            print(f"wrote {target}")
    return 1 if stale else 0


def cmd_derive(args) -> int:
    from .derivation import derive, render
    from .loader import load_model
    model = load_model(args.model)
    print(render(derive(model), latex=args.latex))
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    if args.quick:
        return run_demo(sizes=(200, 800), seeds=2, T=4.0, t0=1.5, plots=args.plots,
                        quiet_derivation=True)
    return run_demo(plots=args.plots)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="balkin", description="Kinetic limits of balanced neural networks: "
                                     "derive, generate, solve and verify.")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write generated/NAME.py for models (all of models/ by default)")
    g.add_argument("models", nargs="*", help="model files (default: every models/*.py)")
    g.add_argument("--check", action="store_true", help="write nothing; exit 1 and name each stale file")
    g.add_argument("--out", help="output folder (default: the project's generated/)")
    g.set_defaults(func=cmd_generate)
    d = sub.add_parser("derive", help="print every derived equation of a model")
    d.add_argument("model", help="model file, e.g. models/ring_ei.py")
    d.add_argument("--latex", action="store_true", help="print LaTeX instead of text")
    d.set_defaults(func=cmd_derive)
    m = sub.add_parser("demo", help="derive, generate, solve and verify ring_ei (about a minute)")
    m.add_argument("--plots", default="balkin-demo", help="folder for the figures (default balkin-demo/)")
    m.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test, not a verification)")
    m.set_defaults(func=cmd_demo)
    try:
        from solvers.commands import register  # solver sub-commands (no SymPy at import)
    except ImportError:
        register = None
    if register is not None:
        register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"balkin {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
