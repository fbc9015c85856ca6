"""Loading generated modules, with the check that they still match their model.

A MODEL on the command line is either

* a bare model name (``ring_ei``): one of balkin's shipped example models, whose generated module is
  the package's own ``generated/NAME.py`` (imported as ``generated.NAME``); or
* a model file (``~/research/proj/models/my_ei.py``): its generated module is
  ``PROJECT/generated/NAME.py`` in the file's *project*, loaded by path.

The project of a model file (``project_of``) is the parent of its ``models/`` folder when the file
lies in a folder named ``models`` (``PROJECT/models/NAME.py``, the layout `balkin init` makes), and
otherwise the file's own folder (``DIR/NAME.py`` -> ``DIR/generated/NAME.py``).  A path to a module
in a folder named ``generated`` is taken as that generated module itself.

A module loaded by path gets a module name made from the sha256 of its absolute path
(``balkin_project_<hash>_NAME``), so two projects with a model of the same name never collide with
each other or with the shipped models.  Its staleness check reads ``MODEL_PATH`` (recorded relative
to the project root, so a project folder can be moved) and ``MODEL_SOURCE_HASH``.  This module never
imports SymPy (model files do: the solvers never run them).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path

#: The folder holding the balkin packages (the source tree, or site-packages for an installed copy).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: The package's own generated/ folder (the shipped example models).
PACKAGE_GENERATED = PROJECT_ROOT / "generated"


class StaleGeneratedModule(RuntimeError):
    """The generated module was produced from a different version of its model file."""


# ---- model references --------------------------------------------------------------------------

def is_model_name(ref) -> bool:
    """A bare model name (``ring_ei``: an identifier, no folder, no suffix), as opposed to a file."""
    if isinstance(ref, os.PathLike):
        return False
    s = str(ref)
    return s.isidentifier()


def model_name(ref) -> str:
    """The reference the solvers load a model by: a bare name stays as it is (a shipped model);
    a model file becomes its absolute path (the generated module of the file's project).  Use the
    loaded module's MODEL_NAME (CompiledModel.name) for display."""
    if is_model_name(ref):
        return str(ref)
    s = str(ref)
    if not s.strip():
        return s                    # load_generated names the error
    return str(Path(s).expanduser().absolute())


def project_of(model_file) -> Path:
    """The project root of a model file: the parent of its ``models/`` folder, else its folder."""
    p = Path(model_file).expanduser().resolve()
    return p.parent.parent if p.parent.name == "models" else p.parent


def generated_path(model_file) -> Path:
    """Where the generated module of a model file lives: PROJECT/generated/NAME.py."""
    p = Path(model_file)
    return project_of(p) / "generated" / f"{p.stem}.py"


def recorded_path(model_file) -> str:
    """The model path written into a generated module (MODEL_PATH): relative to the project root."""
    p = Path(model_file).expanduser().resolve()
    return p.relative_to(project_of(p)).as_posix()


def package_is_installed_copy() -> bool:
    """True when balkin runs from an installed copy (site-packages), not from its source tree."""
    return not (PROJECT_ROOT / "pyproject.toml").exists()


def shown_path(path) -> str:
    """A path for messages: relative to the current folder when below it, else absolute."""
    p = Path(path)
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return p.as_posix()


def _check_model_file(ref) -> Path:
    s = str(ref)
    if not s.strip():
        raise ValueError("the model file name is empty")
    path = Path(s).expanduser()
    if path.is_dir():
        raise ValueError(f"{shown_path(s)} is a folder; give a model file, e.g. models/ring_ei.py")
    if not path.exists():
        raise FileNotFoundError(f"model file {shown_path(s)} does not exist (a bare name such as ring_ei "
                                "means a shipped example model)")
    if path.suffix != ".py":
        raise ValueError(f"{shown_path(s)} is not a model file (a Python file NAME.py defining `model = Model(...)`)")
    return path.resolve()


# ---- freshness ---------------------------------------------------------------------------------

def check_fresh(module, root: Path | None = None, *, command_path: str | None = None) -> None:
    """Raise StaleGeneratedModule if the model file the module was generated from has changed.

    The module records MODEL_PATH (relative to the project root, or absolute) and the sha256 of
    that file, MODEL_SOURCE_HASH; ``root`` is the project root (default: balkin's own).  A missing
    model file cannot be checked and is accepted.  ``command_path``: the model path to print in the
    regeneration command (default: MODEL_PATH)."""
    root = PROJECT_ROOT if root is None else Path(root)
    if not getattr(module, "MODEL_PATH", ""):
        return
    path = Path(module.MODEL_PATH)
    path = path if path.is_absolute() else root / path
    if not path.exists():
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != module.MODEL_SOURCE_HASH:
        shown = command_path or module.MODEL_PATH
        raise StaleGeneratedModule(
            f"generated module for model {module.MODEL_NAME!r} is stale: {shown} changed "
            f"since it was generated (sha256 {digest[:12]}... != recorded {module.MODEL_SOURCE_HASH[:12]}...). "
            f"Regenerate with:  balkin generate {shown}")


# ---- loading -----------------------------------------------------------------------------------

#: Modules loaded by path: absolute path -> ((inode, mtime_ns, size), module); a rewritten file (balkin
#: writes by rename: a new inode) is loaded again.
_BY_PATH: dict = {}


def path_module_name(gen_path) -> str:
    """The module name of a generated module loaded by path: unique per absolute path."""
    p = Path(gen_path).resolve()
    digest = hashlib.sha256(str(p).encode()).hexdigest()[:16]
    return f"balkin_project_{digest}_{p.stem}"


def _import_path(gen: Path):
    st = gen.stat()
    key, stamp = str(gen), (st.st_ino, st.st_mtime_ns, st.st_size)
    hit = _BY_PATH.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    module = import_file(gen, path_module_name(gen))
    _BY_PATH[key] = (stamp, module)
    return module


def import_file(path: Path, name: str):
    """Import the Python file ``path`` as the module ``name`` (registered in sys.modules, removed
    again if executing it fails)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the module file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _load_by_name(name: str):
    try:
        return importlib.import_module(f"generated.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"generated.{name}":
            raise
        raise FileNotFoundError(f"no generated module for model {name!r}; create it with:  "
                                f"balkin generate models/{name}.py (a bare name means a shipped example "
                                f"model; give your model's file, e.g. PROJECT/models/{name}.py)") from None


def resolve_generated(ref) -> tuple[Path, Path]:
    """(generated module path, project root) of a model file or generated-module path."""
    path = _check_model_file(ref)
    if path.parent.name == "generated":
        return path, path.parent.parent
    root = project_of(path)
    return root / "generated" / f"{path.stem}.py", root


def load_generated(ref, *, check: bool = True):
    """The generated module of a model: a bare name imports the shipped generated/NAME.py; a model
    file loads PROJECT/generated/NAME.py of its project by path.  Checks it against its model file."""
    if is_model_name(ref):
        module = _load_by_name(str(ref))
        if check:
            check_fresh(module)
        return module
    gen, root = resolve_generated(ref)
    if not gen.exists():
        raise FileNotFoundError(f"no generated module {shown_path(gen)} for model file {shown_path(ref)}; "
                                f"create it with:  balkin generate {shown_path(ref)}")
    if gen == (PACKAGE_GENERATED / gen.name).resolve() and gen.stem.isidentifier():
        module = _load_by_name(gen.stem)        # the shipped models, from the source tree: one module
    else:
        module = _import_path(gen)
    if check:
        model_file = root / module.MODEL_PATH if getattr(module, "MODEL_PATH", "") else None
        shown = shown_path(model_file) if model_file is not None else None
        check_fresh(module, root=root, command_path=shown)
    return module
