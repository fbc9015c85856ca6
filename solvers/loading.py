"""Loading generated modules, with the check that they still match their model."""
from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class StaleGeneratedModule(RuntimeError):
    """The generated module was produced from a different version of its model file."""


def model_name(ref: str) -> str:
    """'ring_ei', 'models/ring_ei.py' and 'generated/ring_ei.py' all name the model ring_ei."""
    return Path(str(ref)).stem


def check_fresh(module, root: Path | None = None) -> None:
    """Raise StaleGeneratedModule if the model file the module was generated from has changed.

    The module records MODEL_PATH (relative to the project root, or absolute) and the sha256 of
    that file, MODEL_SOURCE_HASH.  A missing model file cannot be checked and is accepted."""
    root = PROJECT_ROOT if root is None else Path(root)
    if not getattr(module, "MODEL_PATH", ""):
        return
    path = Path(module.MODEL_PATH)
    path = path if path.is_absolute() else root / path
    if not path.exists():
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != module.MODEL_SOURCE_HASH:
        raise StaleGeneratedModule(
            f"generated module for model {module.MODEL_NAME!r} is stale: {module.MODEL_PATH} changed "
            f"since it was generated (sha256 {digest[:12]}... != recorded {module.MODEL_SOURCE_HASH[:12]}...). "
            f"Regenerate with:  balkin generate {module.MODEL_PATH}")


def load_generated(ref: str, *, check: bool = True):
    """Import generated/NAME.py for a model name or path; check it against its model file."""
    name = model_name(ref)
    try:
        module = importlib.import_module(f"generated.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"generated.{name}":
            raise
        raise FileNotFoundError(f"no generated module for model {name!r}; create it with:  "
                                f"balkin generate models/{name}.py") from None
    if check:
        check_fresh(module)
    return module
