"""Hostile input to the `balkin` command line never ends in a traceback, and no output file is ever
half-written (issue 14).  In-process runs of balkin.cli.main plus two subprocess runs for signals."""
from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from balkin.cli import app as cli
from cli_helpers import one_error_line, run
from balkin.cli import main

ROOT = Path(__file__).resolve().parents[1]




def test_json_to_a_directory(tmp_path, capsys):
    code, out, err = run(["solve", "ring_ei", "--stationary", "--json", tmp_path], capsys)
    assert code == 2 and out == ""                            # refused before solving
    assert "is a folder" in one_error_line(err, "solve")


def test_json_in_missing_folder(tmp_path, capsys):
    code, _, err = run(["spectrum", "ring_ei", "--npos", 4, "--json", tmp_path / "no" / "x.json"], capsys)
    assert code == 2 and "does not exist" in one_error_line(err, "spectrum")


def test_plots_on_an_existing_file(tmp_path, capsys):
    f = tmp_path / "figs"
    f.write_text("keep me")
    code, out, err = run(["verify", "ring_ei", "--sizes", "20,40", "--seeds", 2, "--T", 1, "--plots", f], capsys)
    assert code == 2 and out == ""
    assert "not a folder" in one_error_line(err, "verify")
    assert f.read_text() == "keep me"


@pytest.mark.parametrize("nx", [0, 1])
def test_tiny_kinetic_grid_is_one_line(nx, capsys):
    code, _, err = run(["solve", "ring_ei", "--kinetic", "--T", 0.1, "--npos", 4, "--nx", nx], capsys)
    assert code == 2
    one_error_line(err, "solve")


def test_huge_simulation_refused_with_estimate(capsys):
    code, out, err = run(["simulate", "ring_ei", "--n", 10 ** 12, "--T", 1, "--dt", 0.1], capsys)
    assert code == 2 and out == ""
    line = one_error_line(err, "simulate")
    assert re.search(r"needs about [\d.]+ TiB", line) and re.search(r"only [\d.]+ \wiB is available", line)


def test_memory_refusal_follows_the_available_memory(monkeypatch, capsys):
    monkeypatch.setenv("BALKIN_MEMORY_AVAILABLE", "100K")
    code, _, err = run(["simulate", "ring_ei", "--n", 1000, "--T", 0.2, "--dt", 0.1], capsys)
    assert code == 2 and "100.0 KiB is available" in one_error_line(err, "simulate")
    code, _, err = run(["solve", "ring_ei", "--kinetic", "--T", 0.2, "--npos", 8], capsys)
    assert code == 2 and "reduce --nx" in one_error_line(err, "solve")


@pytest.mark.parametrize("argv", [["spectrum", "ring_ei", "--npos", 100000],
                                  ["solve", "ring_ei", "--field", "--T", 0.1, "--npos", 100000],
                                  ["solve", "ring_ei", "--kinetic", "--T", 0.1, "--npos", 100000]])
def test_dense_lattice_refused_before_it_is_built(argv, capsys):
    """200,000 lattice points: the dense lattice matrix (~1.2 TiB) is refused at once (issue 14)."""
    code, _, err = run(argv, capsys)
    line = one_error_line(err, argv[0])
    assert code == 2 and "--npos" in line and "TiB" in line and "nothing was allocated" in line


@pytest.mark.parametrize("argv,what", [
    (["solve", "ring_ei", "--stationary", "--n", "nan"], "--n must be a finite number"),
    (["solve", "ring_ei", "--stationary", "--param", "J_EE=inf"], "--param J_EE: must be a finite number"),
    (["simulate", "ring_ei", "--n", 10, "--T", 1, "--dt", 0.1, "--param", "J_EE=abc"], "is not a number"),
    (["solve", "no_such_model", "--stationary"], "no_such_model"),
    (["derive", "/no/such/model.py"], "does not exist"),
])
def test_bad_values_one_line(argv, what, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2 and what in one_error_line(err, argv[0])


def test_unexpected_exception_saves_traceback(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))

    def boom(args):
        raise KeyError("a bug")
    real = cli.build_parser

    def parser():
        p = real()
        sub = next(a for a in p._actions if a.dest == "command")
        sub.choices["derive"].set_defaults(func=boom)
        return p
    monkeypatch.setattr(cli, "build_parser", parser)
    code, _, err = run(["derive", "models/ring_ei.py"], capsys)
    assert code == cli.EXIT_BUG
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "internal error: KeyError" in lines[0] and "please report" in lines[0]
    path = re.search(r"traceback saved to (\S+);", lines[0]).group(1)
    text = Path(path).read_text()
    assert Path(path).parent == tmp_path and "Traceback" in text and "boom" in text and "derive" in text


def test_keyboard_interrupt_in_process(monkeypatch, capsys):
    def interrupted(args):
        t = 3.5     # noqa: F841  (no solver frame: the time is not reported)
        raise KeyboardInterrupt
    real = cli.build_parser

    def parser():
        p = real()
        sub = next(a for a in p._actions if a.dest == "command")
        sub.choices["derive"].set_defaults(func=interrupted)
        return p
    monkeypatch.setattr(cli, "build_parser", parser)
    monkeypatch.setattr("solvers.atomic.WRITTEN", [])
    code, _, err = run(["derive", "models/ring_ei.py"], capsys)
    assert code == 130
    assert err.strip() == "balkin derive: interrupted (SIGINT), nothing written"


# ---- signals in a real process: the old output file stays intact --------------------------------

def _signal_run(tmp_path, sig):
    out = tmp_path / "out.json"
    out.write_text('{"old": true}\n')
    before = out.read_bytes()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-m", "balkin", "simulate", "ring_ei", "--n", "20000", "--T",
                          "100000", "--dt", "0.05", "--json", str(out)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3.0)
    p.send_signal(sig)
    try:
        stdout, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:            # the signal was not acted on: never leave the run behind
            p.kill()
            p.communicate()
    assert out.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["out.json"]          # no temporary left behind
    assert "Traceback" not in stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return p.returncode, lines[0]


def test_sigint_mid_run_keeps_old_output(tmp_path):
    code, line = _signal_run(tmp_path, signal.SIGINT)
    assert code == 130
    assert line.startswith("balkin simulate: interrupted (SIGINT)") and line.endswith("nothing written")


def test_sigterm_mid_run_keeps_old_output(tmp_path):
    code, line = _signal_run(tmp_path, signal.SIGTERM)
    assert code == 143
    assert line.startswith("balkin simulate: interrupted (SIGTERM)") and line.endswith("nothing written")


# ---- property: random hostile command lines ------------------------------------------------------

def _path(kind, tmp):
    return {"dir": str(tmp), "missing": str(tmp / "missing" / "x.json"), "new": str(tmp / "new.json"),
            "file": str(tmp / "existing.json"), "empty": ""}[kind]


PATH_KINDS = ("dir", "missing", "new", "file", "empty")
BAD_NUM = ["-1", "0", "nan", "inf", "-inf", "abc", "", "1e400", "1e300"]
BAD_INT = ["-3", "0", "abc", "1.5", "nan", "10000000000000"]
BAD_PATH = ["dir", "missing", "empty"]

# options per command: flag -> (valid values, hostile values).  Valid values are small, so that a
# valid command line runs in well under a second; T and dt are never huge (a valid huge T would
# simply run long).
OPTIONS = {
    "simulate": {"--n": (["20", "30", "64"], BAD_INT + ["1000000000000", "1"]),
                 "--T": (["0.5", "1"], BAD_NUM[:6]),
                 "--dt": (["0.05", "0.1"], BAD_NUM[:6] + ["1e9", "0.3"]),
                 "--nbins": (["2", "4"], BAD_INT[:5] + ["1000"]),
                 "--coupling": (["auto", "lowrank", "dense"], ["magic", "fft"]),
                 "--record-every": (["0.1"], BAD_NUM[:6] + ["5"]),
                 "--t0": (["0.2"], BAD_NUM[:6] + ["100"]),
                 "--nbatch": (["2", "4"], BAD_INT[:5] + ["100000"]),
                 "--json": (["new", "file"], BAD_PATH)},
    "solve-stationary": {"--npos": (["4", "8"], BAD_INT[:5]), "--n": (["50", "1000"], BAD_NUM),
                         "--param": (["J_EE=1.1"], ["J_EE=nan", "J_EE", "=3", "nope=1", "J_EE=x",
                                                    "J_EE=1e300"]),
                         "--json": (["new", "file"], BAD_PATH)},
    "solve-kinetic": {"--npos": (["4"], BAD_INT[:5]), "--T": (["0.2"], BAD_NUM[:6]),
                      "--dt": (["0.1"], BAD_NUM[:6] + ["1e6"]), "--nx": (["64"], BAD_INT + ["1", "2"]),
                      "--n": (["1000"], BAD_NUM[:6]), "--npz": (["new"], BAD_PATH),
                      "--json": (["new", "file"], BAD_PATH)},
    "solve-field": {"--npos": (["4"], BAD_INT[:5]), "--T": (["0.2"], BAD_NUM[:6]),
                    "--dt": (["0.1"], BAD_NUM[:6] + ["1e6"]), "--json": (["new", "file"], BAD_PATH)},
    "spectrum": {"--npos": (["4", "8"], BAD_INT[:5]), "--n": (["100"], BAD_NUM),
                 "--param": (["J_EE=1.1"], ["J_EE=inf", "J_EE", "nope=1"]),
                 "--json": (["new", "file"], BAD_PATH)},
    # a verify run is slow: its valid values are never all drawn together (see below)
    "verify": {"--sizes": (["20,40"], ["-1", "0", "a,b", "", "20,x"]),
               "--seeds": (["2"], ["0", "1", "-2", "x"]), "--T": (["1"], BAD_NUM[:6]),
               "--plots": (["newdir"], ["file", "missing/"]), "--json": (["new"], BAD_PATH)},
}
MODELS = (["ring_ei", "ei_linear", "models/ring_ei.py"], ["no_such_model", "/tmp", "", "README.md"])


@st.composite
def command_lines(draw):
    """(argv, json path kind): all values valid, or with one or more hostile values."""
    cmd = draw(st.sampled_from(sorted(OPTIONS) + ["derive", "generate", "bogus"]))
    if cmd == "derive":
        return ["derive", draw(st.sampled_from(["/tmp", "/no/such.py", "models/__init__.py", "", "README.md"]))], None
    if cmd == "generate":
        return ["generate", "--check", draw(st.sampled_from(["/no/such.py", "/tmp", "README.md"]))], None
    if cmd == "bogus":
        return ["bogus", "ring_ei"], None
    opts = OPTIONS[cmd]
    flags = sorted(opts)
    hostile = set(draw(st.lists(st.sampled_from(flags + ["model"]), max_size=2)))
    if cmd == "verify" and not hostile:
        hostile = {draw(st.sampled_from(flags))}
    required = {"simulate": {"--n", "--T", "--dt"}, "solve-kinetic": {"--T"}, "solve-field": {"--T"}}.get(cmd, set())
    argv = [cmd.split("-")[0], draw(st.sampled_from(MODELS[1] if "model" in hostile else MODELS[0]))]
    if cmd.startswith("solve-"):
        argv.append("--" + cmd.split("-")[1])
    json_kind = None
    for flag in flags:
        if flag not in hostile and flag not in required and flag not in ("--npos",) and not draw(st.booleans()):
            continue
        value = draw(st.sampled_from(opts[flag][1] if flag in hostile else opts[flag][0]))
        if flag == "--json":
            json_kind = value
            continue
        argv += [flag, value]
    return argv, json_kind


NAN_WORD = re.compile(r"(?<![A-Za-z_])nan(?![A-Za-z_])", re.IGNORECASE)


@settings(max_examples=int(os.environ.get("BALKIN_FUZZ_EXAMPLES", "50")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(command_lines())
def test_hostile_command_lines_never_trace(tmp_path_factory, capsys, case):
    argv, json_kind = case
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "existing.json").write_text('{"old": 1}')
    argv = [_path(a, tmp) if a in PATH_KINDS and i > 1 else str(tmp / a) if a in ("newdir", "missing/")
            else a for i, a in enumerate(argv)]
    if json_kind is not None:
        argv += ["--json", _path(json_kind, tmp)]
    try:
        code = main(argv)
    except SystemExit as exc:                   # argparse: usage + one error line, status 2
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, (argv, err)
    assert code in (0, 1, 2), (argv, code, err)
    if code == 2:
        assert err.strip(), argv
        assert len([ln for ln in err.splitlines() if not ln.startswith(("usage:", " "))]) == 1, (argv, err)
    if code == 0:
        assert not NAN_WORD.search(out), (argv, out)
        if json_kind in ("new", "file"):
            rec = json.loads(Path(_path(json_kind, tmp)).read_text(),
                             parse_constant=lambda c: pytest.fail(f"{c} in the JSON of {argv}"))
            assert rec != {"old": 1}
    elif json_kind == "file":
        assert json.loads((tmp / "existing.json").read_text()) == {"old": 1}, argv
    assert not [p for p in tmp.rglob("*.tmp*")], argv


def test_numbers_in_json_are_finite(tmp_path, capsys):
    out = tmp_path / "s.json"
    code, _, _ = run(["solve", "ring_ei", "--stationary", "--npos", 4, "--json", out], capsys)
    assert code == 0

    def walk(v):
        if isinstance(v, float):
            assert math.isfinite(v)
        elif isinstance(v, dict):
            for w in v.values():
                walk(w)
        elif isinstance(v, list):
            for w in v:
                walk(w)
    walk(json.loads(out.read_text()))
