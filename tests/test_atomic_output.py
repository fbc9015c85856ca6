"""Atomic output files (solvers.atomic), output-path checks (solvers.output) and memory estimates
(solvers.resources)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from solvers import resources
from solvers.atomic import WRITTEN, atomic_open, atomic_savez
from balkin.cli.errors import check_output_args
from solvers.output import OutputPathError, check_output_dir, check_output_file, write_json


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if ".tmp" in p.name]


def test_write_json_replaces_only_when_complete(tmp_path):
    out = tmp_path / "out.json"
    write_json(out, {"a": np.arange(3.0)})
    assert json.loads(out.read_text()) == {"a": [0.0, 1.0, 2.0]}
    assert str(out) in WRITTEN
    mode = out.stat().st_mode & 0o777
    assert mode & 0o600 == 0o600 and mode & 0o077 == 0o666 & ~_umask() & 0o077
    # a record with a NaN is refused before anything is written: the old file is untouched
    with pytest.raises(ValueError, match="non-finite"):
        write_json(out, {"a": [1.0, float("nan")]})
    assert json.loads(out.read_text()) == {"a": [0.0, 1.0, 2.0]}
    assert _leftovers(tmp_path) == []


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, OSError])
def test_interrupted_write_leaves_old_file_and_no_temporary(tmp_path, exc):
    out = tmp_path / "out.json"
    out.write_text("old content\n")
    with pytest.raises(exc):
        with atomic_open(out, "w") as fh:
            fh.write("half of the new con")
            fh.flush()
            raise exc()
    assert out.read_text() == "old content\n"
    assert _leftovers(tmp_path) == []


def test_atomic_savez_appends_suffix_like_numpy_and_round_trips(tmp_path):
    atomic_savez(tmp_path / "res", a=np.arange(4), b=np.eye(2))
    with np.load(tmp_path / "res.npz") as z:
        assert z["a"].tolist() == [0, 1, 2, 3] and z["b"].shape == (2, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.npz"]


def test_check_output_file(tmp_path):
    check_output_file(tmp_path / "new.json")                 # fine: folder exists, file does not
    (tmp_path / "old.json").write_text("{}")
    check_output_file(tmp_path / "old.json")                 # fine: it will be replaced
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output_file(tmp_path, "--json")
    with pytest.raises(OutputPathError, match="does not exist"):
        check_output_file(tmp_path / "missing" / "x.json")
    with pytest.raises(OutputPathError, match="empty"):
        check_output_file("  ", "--npz")
    with pytest.raises(OutputPathError, match="is not a folder"):
        check_output_file(tmp_path / "old.json" / "x.json")


def test_check_output_dir(tmp_path):
    check_output_dir(tmp_path)
    check_output_dir(tmp_path / "a" / "b")                   # can be created
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="not a folder"):
        check_output_dir(tmp_path / "file", "--plots")
    with pytest.raises(OutputPathError, match="not a folder"):
        check_output_dir(tmp_path / "file" / "sub", "--plots")


def test_check_output_args_refuses_two_flags_on_one_path(tmp_path):
    class A:
        json = str(tmp_path / "x")
        npz = str(tmp_path / "x")
    with pytest.raises(OutputPathError, match="same path"):
        check_output_args(A())

    class B:                                 # balkin sweep: --csv is an output like the others
        json = str(tmp_path / "t")
        csv = str(tmp_path / "t")
    with pytest.raises(OutputPathError, match="--json and --csv name the same path"):
        check_output_args(B())


def test_available_memory_and_override(monkeypatch):
    monkeypatch.delenv("BALKIN_MEMORY_AVAILABLE", raising=False)
    avail = resources.available_memory()
    assert avail is None or avail > 0
    monkeypatch.setenv("BALKIN_MEMORY_AVAILABLE", "2G")
    assert resources.available_memory() == 2 * 2 ** 30
    monkeypatch.setenv("BALKIN_MEMORY_AVAILABLE", "1000")
    assert resources.available_memory() == 1000


def test_particle_estimate_scales_and_refuses(monkeypatch):
    est = [resources.particles_memory([n, n], 1, 1, "lowrank", K=3, L=3) for n in (10 ** 3, 10 ** 6)]
    assert 900 < est[1] / est[0] < 1100                       # linear in the number of neurons
    assert est[1] > 2 * 10 ** 6 * 8 * 3                       # at least state, increments, noise
    dense = resources.particles_memory([1000, 1000], 1, 1, "dense")
    assert dense >= 8 * 2000 ** 2                             # the stored dense matrix
    monkeypatch.setenv("BALKIN_MEMORY_AVAILABLE", "1G")
    resources.check_particles_memory([1000, 1000], 1, 1, "lowrank")
    with pytest.raises(resources.InsufficientMemory) as info:
        resources.check_particles_memory([10 ** 9, 10 ** 9], 1, 1, "lowrank")
    msg = str(info.value)
    assert "GiB" in msg and "1.0 GiB is available" in msg and "reduce --n" in msg
    assert info.value.needed > info.value.available == 2 ** 30
    assert isinstance(info.value, MemoryError)


def test_kinetic_and_lattice_estimates(monkeypatch):
    small = resources.kinetic_memory(2, 64, 256)
    assert resources.kinetic_memory(2, 64, 512) > 1.9 * small - resources.lattice_memory(2, 64)
    assert resources.lattice_memory(2, 1000) == 8 * 4 * 2000 ** 2
    monkeypatch.setenv("BALKIN_MEMORY_AVAILABLE", "100M")
    with pytest.raises(resources.InsufficientMemory, match="--nx"):
        resources.check_kinetic_memory(2, 64, 10 ** 6)


def test_simulation_check_from_model_name(monkeypatch):
    monkeypatch.setenv("BALKIN_MEMORY_AVAILABLE", "64G")
    need = resources.check_simulation_memory("ring_ei", 1000, 1.0, 0.1)
    assert 0 < need < 2 ** 30
    with pytest.raises(resources.InsufficientMemory, match="2,000,000,000,000 neurons"):
        resources.check_simulation_memory("ring_ei", 10 ** 12, 1.0, 0.1)


def test_empty_plots_means_no_figures_but_empty_json_is_refused():
    class A:
        plots = ""
    check_output_args(A())                                   # balkin demo --plots "": no figures

    class B:
        json = ""
    with pytest.raises(OutputPathError, match="empty"):
        check_output_args(B())
