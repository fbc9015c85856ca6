"""A user's project: `balkin init DIR`, and where `balkin generate` writes.

A project is a folder with

    DIR/models/NAME.py      model files (each defines `model = Model(name="NAME", ...)`)
    DIR/generated/NAME.py   their generated NumPy modules (written by `balkin generate`)

The project of a model file is the parent of its models/ folder; a model file that is not in a
folder named models/ is its own folder's project (DIR/NAME.py -> DIR/generated/NAME.py).  The rule
lives in solvers.loading (project_of), which the solvers use to find a model file's generated module
by path; nothing is ever written inside an installed copy of balkin.
"""
from __future__ import annotations

from pathlib import Path

#: The example model of a new project: balkin's models/ei_linear.py under the name my_ei
#: (tests/test_user_project.py checks that the two stay the same model).
EXAMPLE_NAME = "my_ei"
EXAMPLE_MODEL = '''"""my_ei: two populations E and I without space (a copy of balkin's example ei_linear).

No space, one state variable, f = -x, sigma = 1, gain g = Phi (standard normal CDF),
w = [[1, -2], [1, -1.8]], h = [0.1, 0.06], alpha = 1 per population.

Why a balanced state exists: (B) reads gE - 2 gI = -0.1, gE - 1.8 gI = -0.06, so the demanded
population activities are gbar = (0.3, 0.2), inside the range (0, 1) of Phi.  W is invertible so h
lies in Range(W).  Why it is stable: with mean slopes D = (D_E, D_I) > 0 the fast matrix W D = [[D_E, -2 D_I],
[D_E, -1.8 D_I]] has trace D_E - 1.8 D_I and determinant 0.2 D_E D_I > 0.  At the balanced state
(x ~ N(lambda, 1/2), lambda = (-0.642, -1.031)) the slopes are D = (0.2839, 0.2286), so the trace is
-0.128 < 0 and both eigenvalues, -0.0638 +- 0.0944 i, have negative real part; they are complex, so
the network rings at frequency 0.0944 sqrt(n) on its way onto the manifold.

The file name must be the model name (my_ei.py <-> name="my_ei"); after every change run
`balkin generate` on this file (the solvers refuse a generated module older than its model).
"""
import sympy as sp

from derive import Model, Phi, Point, Population

x = sp.Symbol("x")
w_EE, w_EI, w_IE, w_II, h_E, h_I = sp.symbols("w_EE w_EI w_IE w_II h_E h_I")

model = Model(
    name="my_ei",
    state=[x],
    space=Point(),
    populations=[
        Population("E", drift=-x, diffusion=1, gain=Phi(x), drive=h_E, fraction=1),
        Population("I", drift=-x, diffusion=1, gain=Phi(x), drive=h_I, fraction=1),
    ],
    kernel={("E", "E"): w_EE, ("E", "I"): w_EI, ("I", "E"): w_IE, ("I", "I"): w_II},
    parameters={w_EE: 1.0, w_EI: -2.0, w_IE: 1.0, w_II: -1.8, h_E: 0.1, h_I: 0.06},
)
'''

GENERATED_README = ("Generated NumPy modules, one per model in ../models/, written by `balkin generate` "
                    "(do not edit; regenerate after changing a model).\n")


def project_readme(shown: str) -> str:
    m = f"{shown}/models/{EXAMPLE_NAME}.py"
    return (f"A balkin project: models/ holds the model files, generated/ their generated NumPy modules.\n"
            f"Next: `balkin generate {m}` (after every change to a model), then e.g. "
            f"`balkin solve {m} --stationary`, `balkin solve {m} --kinetic --T 10`, "
            f"`balkin simulate {m} --n 1000 --T 10 --dt 0.01` and `balkin verify {m}`.\n")


def init_project(folder, out=print) -> list[Path]:
    """Make a project in ``folder`` (created if missing): models/my_ei.py, generated/ and READMEs.
    Refuses a folder whose models/my_ei.py exists; an existing README.md is kept.  Returns the files
    written."""
    from solvers.atomic import atomic_write_text
    from solvers.loading import PROJECT_ROOT, package_is_installed_copy, shown_path
    root = Path(folder).expanduser()
    if not str(folder).strip():
        raise ValueError("the project folder name is empty")
    if root.exists() and not root.is_dir():
        raise ValueError(f"{folder} is a file, not a folder")
    example = root / "models" / f"{EXAMPLE_NAME}.py"
    if example.exists():
        raise FileExistsError(f"{example} already exists: {folder} is already a project (choose a new folder)")
    if package_is_installed_copy() and PROJECT_ROOT in (root.resolve(), *root.resolve().parents):
        raise ValueError(f"{folder} is inside the installed balkin package; make the project elsewhere")
    for sub in ("models", "generated"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shown = str(folder).rstrip("/") or "/"
    files = [(example, EXAMPLE_MODEL),
             (root / "generated" / "README.md", GENERATED_README),
             (root / "README.md", project_readme(shown))]
    written = []
    for path, text in files:
        if path.exists():
            out(f"kept the existing {shown_path(path)}")
            continue
        atomic_write_text(path, text)
        written.append(path)
        out(f"wrote {shown_path(path)}")
    out(f"next:  balkin generate {shown}/models/{EXAMPLE_NAME}.py   (see {shown_path(root / 'README.md')})")
    return written


def generate_target(model_file, out_dir=None, *, create: bool = True) -> Path:
    """Where `balkin generate` writes the module of ``model_file``: out_dir/NAME.py, by default the
    generated/ folder of the file's project (created if missing and ``create``).  Refuses a target
    inside an installed (non-editable) copy of balkin."""
    from solvers.loading import PACKAGE_GENERATED, generated_path, package_is_installed_copy
    path = Path(model_file)
    target = Path(out_dir) / f"{path.stem}.py" if out_dir else generated_path(path)
    if package_is_installed_copy():
        inside = target.resolve().parent
        if inside == PACKAGE_GENERATED or PACKAGE_GENERATED in inside.parents:
            raise ValueError(f"refusing to write {target} inside the installed balkin package; keep your "
                             "models in a project (balkin init DIR) and generate them there")
    if create and not out_dir:
        target.parent.mkdir(exist_ok=True)
    return target


def default_model_files() -> list[Path]:
    """`balkin generate` without model files: the models of the project in the current folder
    (./models/*.py), else balkin's shipped models when it runs from its source tree."""
    from derive.loader import model_files, project_root
    here = Path.cwd()
    if (here / "models").is_dir():
        files = model_files(here)
        if files:
            return files
    from solvers.loading import package_is_installed_copy
    files = [] if package_is_installed_copy() else model_files(project_root())
    if not files:
        raise ValueError("no model files: give them (balkin generate DIR/models/NAME.py) or run this in a "
                         "project folder (one with models/; make one with balkin init DIR)")
    return files
