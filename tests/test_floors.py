"""The floors of the house (issue 10), read from the source's syntax trees (nothing is imported):

* derive/ (symbolic) imports nothing from solvers/ or balkin/; generated/ imports neither derive/ nor
  solvers/; solvers/ imports neither derive/ nor balkin/;
* the engines (derive/, solvers/) contain no argparse and no printing: everything the user sees is
  written by the command line, balkin/cli/;
* no import circles anywhere (derive, solvers, generated, balkin, balkin.cli).
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("derive", "solvers", "generated", "balkin", "balkin.cli")


def modules(root: Path = ROOT, packages=PACKAGES) -> dict:
    """module name -> source file, for every module of ``packages``."""
    return {f"{pkg}.{f.stem}": f for pkg in packages
            for f in sorted((root / pkg.replace(".", "/")).glob("*.py"))}


def imported_names(path: Path, pkg: str):
    """Every module name an ``import`` statement in ``path`` names (module level or inside functions),
    relative imports resolved against ``pkg``, with ``from X import y`` giving X and X.y."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{a.name}" for a in node.names)


def import_graph(root: Path = ROOT, packages=PACKAGES) -> dict:
    """module -> set of modules of ``packages`` it imports."""
    mods = modules(root, packages)
    graph = {}
    for name, path in mods.items():
        pkg = name.rsplit(".", 1)[0]
        deps = {d for d in imported_names(path, pkg) if d in mods}
        # `from balkin.cli import x` names the package balkin.cli: its __init__ module
        deps |= {f"{d}.__init__" for d in imported_names(path, pkg) if f"{d}.__init__" in mods}
        deps.discard(name)
        graph[name] = deps
    return graph


def cycles(graph: dict) -> list:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _top(name: str) -> str:
    return name.split(".")[0]


def test_cycle_finder_finds_a_planted_cycle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [["a", "b", "c"]]


def test_no_import_cycles():
    graph = import_graph()
    assert "derive.validate" in graph and "solvers.stationary" in graph and "balkin.cli.app" in graph
    assert "solvers.density1d" in graph["solvers.stationary"]            # the graph sees real imports
    assert "balkin.cli.errors" in graph["balkin.cli.app"]               # ... relative ones too
    assert cycles(graph) == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles(graph))


FORBIDDEN = {"derive": {"solvers", "balkin"}, "generated": {"derive", "solvers", "balkin"},
             "solvers": {"derive", "balkin"}}


def test_the_floors_import_only_downwards():
    bad = []
    for name, path in modules(packages=tuple(FORBIDDEN)).items():
        pkg = name.rsplit(".", 1)[0]
        for target in set(imported_names(path, pkg)):
            if _top(target) in FORBIDDEN[_top(name)]:
                bad.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not bad, "\n".join(sorted(bad))


def test_the_floor_checker_sees_a_planted_upward_import(tmp_path):
    (tmp_path / "derive").mkdir()
    (tmp_path / "derive" / "x.py").write_text("def f():\n    from solvers.loading import shown_path\n")
    found = list(imported_names(tmp_path / "derive" / "x.py", "derive"))
    assert "solvers.loading" in found


def test_engines_neither_print_nor_parse_arguments():
    bad = []
    for name, path in modules(packages=("derive", "solvers")).items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} calls print")
            if isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr") and \
                    isinstance(node.value, ast.Name) and node.value.id == "sys":
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} uses sys.{node.attr}")
        if "argparse" in set(imported_names(path, name.rsplit(".", 1)[0])):
            bad.append(f"{path.relative_to(ROOT)} imports argparse")
    assert not bad, "\n".join(bad)
