"""The compiled particle step of a generated module: compile its NUMBA_SOURCE with numba, cached on disk.

A generated module carries the numba source of its fused particle step as the string NUMBA_SOURCE
(derive.codegen_numba).  ``load_step(module)`` materialises that text as a Python file in a folder
keyed by its hash and imports it; numba compiles the kernels on first use and caches the machine code
in that folder (``cache=True``: numba's own cache, beside the materialised file).

Where:  PROJECT/generated/__numba_cache__/NAME-<sha256(NUMBA_SOURCE)[:16]>/NAME_step.py, next to the
generated module; for an in-memory module (balkin.compile), or when that folder is not writable or
belongs to an installed copy of balkin, the user cache ($XDG_CACHE_HOME or ~/.cache)/balkin/numba/.

Stale caches are never used:
  * a regenerated module has another hash, hence another folder; the folders of other hashes of the
    same model next to a generated module are removed when the new one is made;
  * a folder whose materialised source does not hash to the folder's key (edited, truncated, or
    written by another version: numba's own cache check compares only the file's mtime and size) is
    refused: removed and rebuilt before anything in it is imported.
No SymPy.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from .atomic import atomic_write_text
from .loading import PACKAGE_GENERATED, import_file, package_is_installed_copy

CACHE_DIRNAME = "__numba_cache__"

#: Compiled steps loaded in this process: full hash -> module.
_LOADED: dict = {}


class CompiledStepUnavailable(RuntimeError):
    """The model has no compiled particle step (see the message), or numba is missing."""


def numba_missing() -> str | None:
    """Why numba cannot be used (None when it can).

    Before numba is first used, OMP_WAIT_POLICY defaults to PASSIVE (unless set): numba's OpenMP
    threading layer otherwise spins its idle threads, and on a machine with more busy threads than cores
    each parallel region waits for the spinning threads to be scheduled.  Measured on the shared 2-core
    machine (load ~11), ring_ei with 2 10^4 neurons: 0.24 M neuron-steps/s spinning, 8.8 passive
    (3.6 on one thread)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import numba  # noqa: F401
    except ImportError as exc:          # pragma: no cover - numba is a dependency
        return f"numba is not importable ({exc}); install it with  pip install 'numba>=0.60'"
    return None


#: The run-time the generated source imports (solvers/numba_runtime.py): part of the cache key, since
#: numba's cache does not see a change in a function it calls from another file.
RUNTIME_FILE = Path(__file__).resolve().with_name("numba_runtime.py")


def source_hash(src) -> str:
    """The cache key: sha256 of the numba source text (str or bytes) followed by the run-time's text."""
    data = src.encode() if isinstance(src, str) else src
    return hashlib.sha256(data + b"\0" + RUNTIME_FILE.read_bytes()).hexdigest()


def user_cache_root() -> Path:
    """$XDG_CACHE_HOME/balkin/numba (default ~/.cache/balkin/numba)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "balkin" / "numba"


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def cache_root(module) -> tuple[Path, bool]:
    """(folder holding the per-hash cache folders, whether it sits next to the generated module)."""
    f = getattr(module, "__file__", None)
    if f:
        gen = Path(f).resolve().parent
        installed = package_is_installed_copy() and gen == PACKAGE_GENERATED.resolve()
        if not installed and _writable(gen / CACHE_DIRNAME):
            return gen / CACHE_DIRNAME, True
    return user_cache_root(), False


def step_folder(module) -> Path:
    """The cache folder of this module's compiled step: ROOT/NAME-<sha256[:16]>."""
    src = module.NUMBA_SOURCE
    root, _ = cache_root(module)
    return root / f"{module.MODEL_NAME}-{source_hash(src)[:16]}"


def materialise(module) -> Path:
    """Write NUMBA_SOURCE into its hash-keyed folder (refusing a folder whose file does not match);
    remove the folders of other hashes of the same model next to the generated module.  Returns the
    file's path."""
    src = module.NUMBA_SOURCE
    full = source_hash(src)
    root, adjacent = cache_root(module)
    folder = root / f"{module.MODEL_NAME}-{full[:16]}"
    path = folder / f"{module.MODEL_NAME}_step.py"
    if path.exists() and source_hash(path.read_bytes()) != full:
        shutil.rmtree(folder, ignore_errors=True)           # stale or damaged: never used
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("__pycache__"):              # machine code of another text
            shutil.rmtree(old, ignore_errors=True)
        atomic_write_text(path, src, record=False)       # a cache, not an output
    if adjacent:
        for other in root.glob(f"{module.MODEL_NAME}-*"):
            if other != folder and other.is_dir() and len(other.name) == len(folder.name):
                shutil.rmtree(other, ignore_errors=True)
    return path


def load_step(module):
    """The imported compiled-step module of a generated module (kernels compile on first call and are
    cached on disk).  Raises CompiledStepUnavailable when the model has none or numba is missing."""
    src = getattr(module, "NUMBA_SOURCE", None)
    if src is None:
        why = getattr(module, "NUMBA_UNSUPPORTED", "") or (
            "the generated module predates the compiled step; regenerate it with  balkin generate")
        raise CompiledStepUnavailable(f"model {module.MODEL_NAME!r} has no compiled particle step: {why}")
    missing = numba_missing()
    if missing:
        raise CompiledStepUnavailable(missing)
    full = source_hash(src)
    hit = _LOADED.get(full)
    if hit is not None:
        return hit
    path = materialise(module)
    mod = import_file(path, f"balkin_numba_{full[:16]}_{module.MODEL_NAME}")
    mod.SOURCE_HASH = full
    _LOADED[full] = mod
    return mod
