"""`balkin verify` and `balkin demo`: the verifier passes on correct predictions and fails, naming
the check, on wrong ones."""
import json

import numpy as np
import pytest

from solvers.compiled import CompiledModel
from solvers.verify import VerifySettings, verify

SMALL = dict(sizes=(300, 1200), seeds=3, T=8.0, t0=3.0, dt=0.01)


def test_verify_passes_on_ei_linear_at_small_sizes():
    rep = verify("ei_linear", VerifySettings(**SMALL), progress=None)
    assert rep.passed, rep.failure_lines()
    assert set(rep.checks) == {"finite-n", "dt-bias", "limit-rate", "field"}
    # the finite-n equation is close; the balanced limit is far at these sizes
    e = rep.per_n[-1]["mean"]
    assert np.all(np.abs(e["err_finite_n"]) < 0.05)
    assert np.all(np.abs(e["err_limit"]) > 0.08)


@pytest.mark.slow
def test_verify_passes_on_ring_ei():
    rep = verify("ring_ei", VerifySettings(**SMALL), progress=None)
    assert rep.passed, rep.failure_lines()


def test_verify_fails_on_a_biased_prediction():
    """A kinetic solution deliberately shifted by 0.05 in the mean: the finite-n check fails and the
    message names it, with the size of the error."""
    rep = verify("ei_linear", VerifySettings(**SMALL), progress=None, bias={"mean": 0.05})
    assert not rep.passed
    assert not rep.checks["finite-n"]["passed"]
    lines = rep.failure_lines()
    assert any(line.startswith("FAIL finite-n:") and "mean" in line for line in lines)


def test_verify_fails_when_predictions_use_other_parameters():
    """The network simulates h_I = 0.08, the prediction is built for the model's h_I = 0.06."""
    sim = CompiledModel("ei_linear", {"h_I": 0.08})
    rep = verify(sim, VerifySettings(**SMALL), progress=None, prediction_model=CompiledModel("ei_linear"))
    assert not rep.checks["finite-n"]["passed"]
    assert "worst" in rep.checks["finite-n"]["message"]


def test_verify_cli_exit_codes_json_and_plots(tmp_path, capsys):
    from balkin.cli import main
    js = tmp_path / "v.json"
    args = ["verify", "ei_linear", "--sizes", "300,1200", "--seeds", "3", "--T", "6", "--t0", "2",
            "--json", str(js)]
    pytest.importorskip("matplotlib")
    rc = main(args + ["--plots", str(tmp_path / "fig")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "verdict: PASS" in out.out and "run 6/6" in out.out and "expected remaining" in out.out
    rec = json.loads(js.read_text())
    assert rec["verdict"] == "PASS" and len(rec["per_n"]) == 2
    assert {"slope", "ci95", "asymptotic_slope"} <= set(rec["slope"])
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == [
        "ei_linear_densities.png", "ei_linear_error_vs_n.png", "ei_linear_lambda.png"]


def test_verify_rejects_bad_settings():
    with pytest.raises(ValueError, match="t0"):
        verify("ei_linear", VerifySettings(sizes=(100, 200), seeds=2, T=2.0, t0=3.0), progress=None)
    with pytest.raises(ValueError, match="2 seeds"):
        verify("ei_linear", VerifySettings(sizes=(100, 200), seeds=1), progress=None)


def test_demo_runs_end_to_end_on_a_users_project(tmp_path, monkeypatch, capsys):
    """`balkin demo --model FILE` on a project made by `balkin init`: the module is generated into the
    project (not into balkin), and the pipeline runs through verify.  The default model is ring_ei."""
    from balkin.cli import build_parser, main
    assert build_parser().parse_args(["demo"]).model == "ring_ei"
    monkeypatch.chdir(tmp_path)
    assert main(["init", "proj"]) == 0
    rc = main(["demo", "--model", "proj/models/my_ei.py", "--quick", "--plots", ""])
    out = capsys.readouterr().out
    assert "== 1. derive proj/models/my_ei.py" in out and "wrote proj/generated/my_ei.py" in out
    assert "== 6. verify" in out and "demo finished" in out and "verdict:" in out
    assert (tmp_path / "proj" / "generated" / "my_ei.py").exists()
    assert rc in (0, 1)     # a smoke test: at these tiny sizes the verdict itself is not the point
