"""A user's project (issue 10): `balkin init DIR`, `balkin generate DIR/models/NAME.py` writes
DIR/generated/NAME.py, and every command given a model file loads its project's generated module by
path (unique module names: two projects' same-named models never collide), with the staleness check;
nothing is ever written into balkin's own generated/ folder."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import one_error_line, run
from balkin.cli import main
from balkin.project import EXAMPLE_MODEL, EXAMPLE_NAME
from solvers.compiled import CompiledModel
from solvers.loading import (PACKAGE_GENERATED, StaleGeneratedModule, load_generated, model_name,
                             path_module_name, project_of)

ROOT = Path(__file__).resolve().parents[1]




def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def generated_project(tmp_path_factory):
    """A project made by `balkin init` and generated once (tests copy it before changing it)."""
    base = tmp_path_factory.mktemp("projects")
    before = snapshot(PACKAGE_GENERATED)
    assert main(["init", str(base / "proj")]) == 0
    assert main(["generate", str(base / "proj" / "models" / f"{EXAMPLE_NAME}.py")]) == 0
    assert snapshot(PACKAGE_GENERATED) == before, "generate wrote into balkin's own generated/"
    return base / "proj"


@pytest.fixture
def project(generated_project, tmp_path):
    """A fresh copy of the generated project in another place (a moved project stays fresh)."""
    dest = tmp_path / "copy" / "proj"
    shutil.copytree(generated_project, dest)
    return dest


def test_init_makes_a_project(tmp_path, capsys):
    code, out, _ = run(["init", tmp_path / "p"], capsys)
    assert code == 0
    model = tmp_path / "p" / "models" / "my_ei.py"
    assert model.read_text() == EXAMPLE_MODEL and 'name="my_ei"' in EXAMPLE_MODEL
    assert (tmp_path / "p" / "generated").is_dir()
    assert not list((tmp_path / "p" / "generated").glob("*.py"))
    readme = (tmp_path / "p" / "README.md").read_text()
    assert "balkin generate" in readme and "balkin solve" in readme
    assert "balkin generate" in out


def test_init_refuses_an_existing_project_in_one_line(tmp_path, capsys):
    assert run(["init", tmp_path / "p"], capsys)[0] == 0
    model = tmp_path / "p" / "models" / "my_ei.py"
    model.write_text(model.read_text() + "# my edits\n")
    code, out, err = run(["init", tmp_path / "p"], capsys)
    assert code == 2 and out == ""
    assert "already exists" in one_error_line(err, "init")
    assert model.read_text().endswith("# my edits\n")
    (tmp_path / "file").write_text("x")
    code, _, err = run(["init", tmp_path / "file"], capsys)
    assert code == 2 and "not a folder" in one_error_line(err, "init")


def test_init_keeps_an_existing_readme(tmp_path, capsys):
    (tmp_path / "README.md").write_text("mine")
    assert run(["init", tmp_path], capsys)[0] == 0
    assert (tmp_path / "README.md").read_text() == "mine"


def test_example_model_is_ei_linear_renamed():
    shipped = (ROOT / "models" / "ei_linear.py").read_text()
    code = shipped[shipped.index("import sympy"):].replace("ei_linear", EXAMPLE_NAME)
    assert EXAMPLE_MODEL[EXAMPLE_MODEL.index("import sympy"):] == code


def test_generate_writes_into_the_project(generated_project):
    module_file = generated_project / "generated" / "my_ei.py"
    assert module_file.exists()
    module = load_generated(generated_project / "models" / "my_ei.py")
    assert module.MODEL_PATH == "models/my_ei.py"          # relative to the project: it can be moved
    assert module.__name__ == path_module_name(module_file) and module.__name__ not in ("my_ei", "generated.my_ei")
    assert project_of(generated_project / "models" / "my_ei.py") == generated_project.resolve()


def test_solve_and_simulate_by_path_from_another_folder(project, tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    ref = "../copy/proj/models/my_ei.py"
    code, out, err = run(["solve", ref, "--stationary", "--json", "s.json"], capsys)
    assert code == 0, err
    rec = json.loads((elsewhere / "s.json").read_text())
    assert rec["model"] == "my_ei" and rec["E"]["gbar"] == [pytest.approx(0.3)]
    code, out, err = run(["simulate", ref, "--n", 50, "--T", 0.2, "--dt", 0.01], capsys)
    assert code == 0, err
    assert "model my_ei" in out
    code, out, err = run(["spectrum", ref, "--n", 1000], capsys)
    assert code == 0, err
    code, out, err = run(["derive", ref], capsys)
    assert code == 0 and "my_ei" in out


def test_two_projects_with_the_same_model_name_do_not_collide(project, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(project, other)
    model = other / "models" / "my_ei.py"
    model.write_text(model.read_text().replace("h_I: 0.06", "h_I: 0.07"))
    assert run(["generate", model], capsys)[0] == 0
    a = load_generated(project / "models" / "my_ei.py")
    b = load_generated(model)
    assert a is not b and a.__name__ != b.__name__
    assert a.PARAMETERS["h_I"] == 0.06 and b.PARAMETERS["h_I"] == 0.07
    assert load_generated(project / "models" / "my_ei.py").PARAMETERS["h_I"] == 0.06    # still a
    # a project model named like a shipped one: the bare name keeps meaning the shipped model
    shipped_like = tmp_path / "third" / "models" / "ei_linear.py"
    shipped_like.parent.mkdir(parents=True)
    shipped_like.write_text((ROOT / "models" / "ei_linear.py").read_text().replace("h_I: 0.06", "h_I: 0.05"))
    before = snapshot(PACKAGE_GENERATED)
    assert run(["generate", shipped_like], capsys)[0] == 0
    assert snapshot(PACKAGE_GENERATED) == before
    assert CompiledModel(model_name(str(shipped_like))).params["h_I"] == 0.05
    assert CompiledModel("ei_linear").params["h_I"] == 0.06
    assert load_generated("ei_linear") is sys.modules["generated.ei_linear"]


def test_stale_module_by_path_is_refused_in_one_line(project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    model = project / "models" / "my_ei.py"
    model.write_text(model.read_text().replace("h_I: 0.06", "h_I: 0.065"))
    with pytest.raises(StaleGeneratedModule, match=r"balkin generate models/my_ei.py"):
        load_generated(model)
    code, out, err = run(["solve", "models/my_ei.py", "--stationary"], capsys)
    assert code == 2 and "stale" in one_error_line(err, "solve")
    code, out, _ = run(["generate", "--check"], capsys)      # the current folder's project
    assert code == 1 and "stale: generated/my_ei.py" in out
    assert run(["generate"], capsys)[0] == 0
    assert load_generated(model).PARAMETERS["h_I"] == 0.065  # the rewritten module is reloaded


def test_missing_generated_module_names_the_command(tmp_path, capsys):
    assert run(["init", tmp_path / "p"], capsys)[0] == 0
    ref = tmp_path / "p" / "models" / "my_ei.py"
    for argv in (["solve", ref, "--stationary"], ["simulate", ref, "--n", 10, "--T", 0.1, "--dt", 0.01],
                 ["verify", ref, "--sizes", "20,40", "--seeds", 2, "--T", 1], ["spectrum", ref]):
        code, out, err = run(argv, capsys)
        line = one_error_line(err, argv[0])
        assert code == 2 and f"balkin generate {ref}" in line, line
    with pytest.raises(FileNotFoundError, match="balkin generate"):
        load_generated(ref)


@pytest.mark.parametrize("bad, words", [("missing/my_ei.py", "does not exist"), ("README.md", "not a model file"),
                                        ("no_such_model", "balkin generate models/no_such_model.py")])
def test_bad_model_references_are_one_line(bad, words, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("x")
    code, _, err = run(["solve", bad, "--stationary"], capsys)
    assert code == 2 and words in one_error_line(err, "solve")


def test_model_file_outside_a_models_folder(generated_project, tmp_path, capsys):
    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copy(generated_project / "models" / "my_ei.py", loose / "my_ei.py")
    assert run(["generate", loose / "my_ei.py"], capsys)[0] == 0
    module = load_generated(loose / "my_ei.py")
    assert Path(module.__file__) == (loose / "generated" / "my_ei.py").resolve()
    assert module.MODEL_PATH == "my_ei.py"


def test_shipped_model_file_in_the_source_tree_is_the_package_module(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert load_generated("models/ring_ei.py") is load_generated("ring_ei") is sys.modules["generated.ring_ei"]
    assert load_generated("generated/ring_ei.py") is sys.modules["generated.ring_ei"]


def test_loading_by_path_does_not_import_sympy(generated_project):
    code = ("import sys\n"
            "from solvers.compiled import CompiledModel\n"
            "from solvers.loading import model_name\n"
            f"cm = CompiledModel(model_name({str(generated_project / 'models' / 'my_ei.py')!r}))\n"
            "assert cm.name == 'my_ei'\n"
            "assert 'sympy' not in sys.modules, 'sympy was imported'\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_readme_tutorial_is_what_ci_runs():
    """The command block at the top of the README tutorial is the one .ci/run runs."""
    readme = (ROOT / "README.md").read_text()
    tutorial = readme[readme.index("## Tutorial"):readme.index("## Command reference")]
    block = [ln.split("#")[0].strip() for ln in tutorial.splitlines() if ln.startswith("    balkin ")]
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.strip().startswith("balkin ") and "proj" in ln]
    assert block and block == ci
