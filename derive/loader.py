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
    """The folder holding balkin's own packages (its source tree, or site-packages when installed):
    the project of the shipped example models.  A user's model file has its own project
    (solvers.loading.project_of, which derive does not import)."""
    import generated
    return Path(generated.__file__).resolve().parent.parent


def model_files(root: Path | None = None) -> list[Path]:
    """The model files of a project: root/models/*.py (default: balkin's own shipped models)."""
    root = project_root() if root is None else root
    return sorted((Path(root) / "models").glob("[!_]*.py"))
