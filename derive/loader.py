"""Loading model files (models/NAME.py defines `model`)."""
from __future__ import annotations

import runpy
from pathlib import Path

from .dsl import Model, ModelError


def load_model(path) -> Model:
    """Run the model file and return its ``model``; clear errors when it is missing or wrong."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist")
    ns = runpy.run_path(str(path))
    model = ns.get("model")
    if not isinstance(model, Model):
        raise ModelError(f"model file {path} does not define `model = Model(...)`")
    if model.name != path.stem:
        raise ModelError(f"model file {path} defines model {model.name!r}; the file must be named "
                         f"{model.name}.py (the generated module is generated/{model.name}.py)")
    return model


def project_root() -> Path:
    import generated
    return Path(generated.__file__).resolve().parent.parent


def model_files(root: Path | None = None) -> list[Path]:
    root = project_root() if root is None else root
    return sorted((root / "models").glob("[!_]*.py"))


def relative_path(path) -> str:
    """Path of a model file as recorded in generated code: relative to the project root when
    inside it (reproducible across clones), absolute otherwise."""
    p = Path(path).resolve()
    try:
        return p.relative_to(project_root()).as_posix()
    except ValueError:
        return p.as_posix()
