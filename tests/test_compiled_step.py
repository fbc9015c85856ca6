"""The compiled (numba) particle step against the NumPy reference path (issue 12).

* Same noise, same steps: both backends fed the same Brownian increments (the ``noise`` callback)
  take the same steps: final states, records and multipliers agree to 1e-12 (relative to their
  scale), for every model in models/ and both schemes (ring_ei and ring_nonlinear here, the other
  models under the slow mark).
* Own random numbers: the compiled step's counter-based normals (Philox4x32-10, known-answer test; the
  ziggurat's tables and the moments and tails of its normals) and, over independent seeds, the time-averaged
  means and variances of both backends within 4 standard errors of each other.
* The same seed gives the same bits with 1 and 2 threads.
* The disk cache: a regenerated source gets its own folder (the old one is removed), a cache folder
  whose source does not match its key is refused and rebuilt.
"""
from __future__ import annotations

import math
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from solvers.compiled import CompiledModel  # noqa: E402
from solvers.particle_compiled import BackendFallback  # noqa: E402
from solvers.particle_numba import CompiledStepUnavailable, load_step, materialise  # noqa: E402
from solvers import particle_numba  # noqa: E402
from solvers.particles import simulate  # noqa: E402

MODELS = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "models").glob("*.py"))
FAST_MODELS = ("ring_ei", "ring_nonlinear")


def shared_noise(seed):
    """A noise callback: increments N(0, dt) that depend on (seed, step, population) only."""
    def noise(step, pop, dt, out):
        r = np.random.default_rng([seed, step, sum(map(ord, pop))])
        out[:] = r.standard_normal(out.shape) * math.sqrt(dt)
    return noise


def assert_close(a, b, what, rel=1e-12):
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = max(1.0, float(np.max(np.abs(a))))
    err = float(np.max(np.abs(a - b)))
    assert err <= rel * scale, f"{what}: max |numpy - numba| = {err:.3g} > {rel:g} x {scale:.3g}"


def same_noise_case(model, scheme, implicit=True, coupling="auto"):
    """Both backends on ``model`` (a name or a CompiledModel), n = 500, T = 0.5, dt = 0.01, fed the same
    noise: final states and records agree to 1e-12."""
    kw = dict(seed=4, scheme=scheme, implicit=implicit, noise=shared_noise(11), record_every=0.05,
              coupling=coupling)
    a = simulate(model, 500, 0.5, 0.01, backend="numpy", **kw)
    b = simulate(model, 500, 0.5, 0.01, backend="numba", **kw)
    assert (a.backend, b.backend) == ("numpy", "numba")
    assert a.dt == b.dt and a.step_audit["checks"] == b.step_audit["checks"]
    for pop in a.final_states:
        assert_close(a.final_states[pop], b.final_states[pop], f"{a.model.name} {scheme} final states of {pop}")
    for name in ("mean", "variance", "gbar", "lam", "lam_state"):
        assert_close(getattr(a, name), getattr(b, name), f"{a.model.name} {scheme} records {name}")


@pytest.mark.parametrize("scheme", ["euler", "milstein"])
@pytest.mark.parametrize("model", FAST_MODELS)
def test_same_noise_same_steps(model, scheme):
    same_noise_case(model, scheme)


def test_same_noise_explicit_coupling():
    """The explicit low-rank coupling (implicit=False; the guard refines dt): the same steps."""
    same_noise_case("ring_ei", "euler", implicit=False)


@pytest.mark.parametrize("coupling", ["fft", "dense"])
@pytest.mark.parametrize("model", FAST_MODELS)
def test_same_noise_field_couplings(model, coupling):
    """FFT and dense couplings (explicit coupling step, the field from the coupling operator, the
    per-neuron work compiled): the same steps as the NumPy path."""
    same_noise_case(model, "euler", coupling=coupling)


@pytest.mark.parametrize("coupling", ["fft", "dense"])
def test_same_noise_nonseparable_kernel(coupling):
    """A kernel that is not separable has a compiled step too (the field on its one atom row)."""
    from test_particles import nonseparable_ring
    cm = nonseparable_ring("nsep_compiled")
    assert cm.module.NUMBA_SOURCE is not None and "NR = 1" in cm.module.NUMBA_SOURCE
    same_noise_case(cm, "euler", coupling=coupling)


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["euler", "milstein"])
@pytest.mark.parametrize("model", [m for m in MODELS if m not in FAST_MODELS])
def test_same_noise_same_steps_other_models(model, scheme):
    same_noise_case(model, scheme)


def stimulated_two_component_model():
    """An in-memory ring model with what the shipped models lack: two state components, two noise
    components (one multiplicative: Milstein terms), and an input and a drive that depend on t (evaluated
    in the kernels, not precomputed)."""
    import sympy as sp
    from derive import Model, Phi, Population, Ring, t
    from derive.codegen import compile_module
    x, y, th, ph, s = sp.symbols("x y theta phi s")
    pops = [Population(name, drift=[-x + y / 2, -y + x / 4],
                       diffusion=sp.Matrix([[s * sp.sqrt(1 + x ** 2 / 4), 0], [0, 1]]), gain=Phi(x),
                       drive=h * (1 + sp.cos(th) / 5) * (1 + sp.sin(t) / 5), input=sp.cos(2 * t) / 10 * sp.sin(th))
            for name, h in (("E", sp.Rational(1, 10)), ("I", sp.Rational(6, 100)))]
    c = sp.cos(th - ph)
    kernel = {("E", "E"): 1 + c / 2, ("E", "I"): -2 * (1 + c * sp.Rational(9, 10)),
              ("I", "E"): 1 + c / 2, ("I", "I"): -sp.Rational(18, 10) * (1 + c * sp.Rational(9, 10))}
    return CompiledModel(compile_module(Model(name="stim2", state=[x, y], space=Ring(th, ph), populations=pops,
                                              kernel=kernel, parameters={s: 0.8})))


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["euler", "milstein"])
def test_same_noise_two_components_time_dependent_input(scheme):
    same_noise_case(stimulated_two_component_model(), scheme)


def test_same_noise_slopes_every_third_step():
    """jacobian_every = 3: the exponential step's slopes (and phi_2) refreshed every third step only."""
    kw = dict(seed=4, noise=shared_noise(5), record_every=0.05, jacobian_every=3)
    a = simulate("ring_ei", 500, 0.3, 0.01, backend="numpy", **kw)
    b = simulate("ring_ei", 500, 0.3, 0.01, backend="numba", **kw)
    for pop in a.final_states:
        assert_close(a.final_states[pop], b.final_states[pop], f"jacobian_every=3 final states of {pop}")
    assert_close(a.lam, b.lam, "jacobian_every=3 lam")


def test_blow_up_is_reported_at_the_same_time():
    """ring_nonlinear (drift -x - c x^3) at dt = 0.5 without the step audit: explicit Euler on the cubic
    drift diverges; both backends, fed the same noise, raise SimulationBlowUp naming the same time and
    population."""
    from solvers.particles import SimulationBlowUp
    msgs = []
    for be in ("numpy", "numba"):
        with pytest.raises(SimulationBlowUp) as exc:
            simulate("ring_nonlinear", 200, 20.0, 0.5, dt_guard="off", backend=be, seed=1, noise=shared_noise(2))
        msgs.append(str(exc.value))
    assert msgs[0] == msgs[1] and "t = " in msgs[0] and "population" in msgs[0]


# ---- the compiled step's own random numbers ------------------------------------------------------
def test_philox_known_answers():
    """Philox4x32-10 against the known-answer vectors of Random123 (kat_vectors)."""
    k = load_step(CompiledModel("ring_ei").module)
    u = np.uint64
    cases = [((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
             ((0xffffffff,) * 4, (0xffffffff,) * 2, (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
             ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
              (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1))]
    for ctr, key, want in cases:
        got = k._philox(*(u(c) for c in ctr), *(u(c) for c in key))
        assert tuple(int(v) for v in got) == want


def test_ziggurat_tables():
    """The ziggurat layers have equal areas V (rectangle x_i (f(x_{i-1}) - f(x_i)) for the layers, and
    R f(R) + the tail for the base) and reach x = 0 at the top (f = exp(-x^2/2)): exact up to rounding."""
    k = load_step(CompiledModel("ring_ei").module)
    x = k._WI * 2.0 ** 52                   # layer right edges x_i (x_255 = R), x_0 the base's width
    f = k._FI
    assert x[255] == pytest.approx(k._ZIG_R, rel=1e-15)
    assert np.allclose(f[1:], np.exp(-0.5 * x[1:] ** 2), rtol=1e-14)
    areas = x[1:255] * (f[:254] - f[1:255])
    assert np.allclose(areas, k._ZIG_V, rtol=1e-9)
    assert abs(x[1] * (1.0 - f[1]) - k._ZIG_V) < 1e-9


def test_normals_are_standard():
    """10^6 normals of one step: mean, variance, fourth moment and the probabilities of |z| > 2 and of
    the ziggurat's tail |z| > R within 4 standard errors; the Kolmogorov-Smirnov statistic below its
    0.1 % critical value 1.95 / sqrt(N)."""
    from scipy.special import ndtr
    k = load_step(CompiledModel("ring_ei").module)
    normal = k._normal

    @numba.njit
    def draw(N):
        out = np.empty(N)
        for i in range(N):
            out[i] = normal(np.uint64(7), np.uint64(9), 1, 3, i)
        return out

    N = 1_000_000
    z = draw(N)
    se_mean, se_var, se_m4 = 1 / math.sqrt(N), math.sqrt(2 / N), math.sqrt(96 / N)
    assert abs(z.mean()) < 4 * se_mean
    assert abs(z.var() - 1) < 4 * se_var
    assert abs(np.mean(z ** 4) - 3) < 4 * se_m4
    for c in (2.0, k._ZIG_R):
        p = 2 * ndtr(-c)
        assert abs(np.mean(np.abs(z) > c) - p) < 4 * math.sqrt(p * (1 - p) / N)
    zs = np.sort(z)
    cdf = ndtr(zs)
    ks = max(np.max(np.arange(1, N + 1) / N - cdf), np.max(cdf - np.arange(N) / N))
    assert ks < 1.95 / math.sqrt(N)


@pytest.mark.slow
def test_backends_statistically_equivalent():
    """ring_ei, n = 2000, T = 6: per population and bin, the time-averaged (t >= 2) mean and variance
    of the state, over 6 seeds per backend, agree within 4 combined standard errors (se of the mean
    over seeds); on average over the bins within 3."""
    out = {}
    for be in ("numpy", "numba"):
        runs = [simulate("ring_ei", 2000, 6.0, 0.01, seed=s, backend=be, nbins=4, record_every=0.05)
                for s in range(6)]
        av = [r.time_average(t0=2.0) for r in runs]
        out[be] = {k: np.array([a[k] for a in av]) for k in ("mean", "variance")}
    for k in ("mean", "variance"):
        a, b = out["numpy"][k], out["numba"][k]
        se = np.sqrt(a.var(axis=0, ddof=1) / len(a) + b.var(axis=0, ddof=1) / len(b))
        zs = (a.mean(axis=0) - b.mean(axis=0)) / se
        assert np.all(np.abs(zs) < 4), f"{k}: z-scores {zs}"
        assert abs(zs.mean()) < 3 / math.sqrt(zs.size) * 1.5, f"{k}: mean z {zs.mean()}"


# ---- threads ------------------------------------------------------------------------------------
def test_same_seed_same_bits_with_one_and_two_threads():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread on this machine")
    n = 3 * load_step(CompiledModel("ring_ei").module).CHUNK + 17     # several chunks per population
    before = numba.get_num_threads()
    res = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            res.append(simulate("ring_ei", n, 0.2, 0.01, seed=9, backend="numba", record_every=0.05))
    finally:
        numba.set_num_threads(before)
    a, b = res
    for pop in a.final_states:
        assert np.array_equal(a.final_states[pop], b.final_states[pop])
    for name in ("mean", "variance", "gbar", "lam"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    c = simulate("ring_ei", n, 0.2, 0.01, seed=10, backend="numba", record_every=0.05)
    assert not np.array_equal(a.final_states["E"], c.final_states["E"])      # the seed matters


# ---- backend choice -------------------------------------------------------------------------------
def test_backend_choice_and_fallback(monkeypatch):
    small = simulate("ring_ei", 200, 0.05, 0.01)
    assert small.backend == "numpy"                               # below AUTO_NEURON_STEPS
    with pytest.raises(ValueError, match="backend must be"):
        simulate("ring_ei", 200, 0.05, 0.01, backend="cuda")
    with pytest.raises(CompiledStepUnavailable, match="no coupling row to carry the dense coupling"):
        simulate("ei_linear", 200, 0.05, 0.01, coupling="dense", backend="numba")
    import solvers.particle_compiled as pc
    monkeypatch.setattr(pc, "AUTO_NEURON_STEPS", 0)
    with pytest.warns(BackendFallback, match="no coupling row to carry the dense coupling"):
        r = simulate("ei_linear", 64, 0.02, 0.01, coupling="dense")
    assert r.backend == "numpy"
    assert simulate("ring_ei", 64, 0.02, 0.01, coupling="fft").backend == "numba"
    assert simulate("ring_ei", 200, 0.05, 0.01).backend == "numba"
    old = types.SimpleNamespace(**{k: getattr(CompiledModel("ring_ei").module, k)
                                   for k in dir(CompiledModel("ring_ei").module) if not k.startswith("__")})
    old.NUMBA_SOURCE, old.NUMBA_UNSUPPORTED = None, ""
    with pytest.raises(CompiledStepUnavailable, match="regenerate"):
        simulate(CompiledModel(old), 200, 0.05, 0.01, backend="numba")


def test_generated_source_is_plain():
    """The numba section imports math, numpy, numba and balkin's numba run-time only (no SymPy) and is
    quoted verbatim."""
    src = CompiledModel("ring_ei").module.NUMBA_SOURCE
    imports = {ln.split()[1] for ln in src.splitlines() if ln.startswith(("import ", "from "))}
    assert imports == {"math", "numba", "numpy", "solvers.numba_runtime"}
    assert "sympy" not in src


# ---- the disk cache -------------------------------------------------------------------------------
TINY = '''import numba


@numba.njit(cache=True)
def value():
    return {v}
'''


def tiny_module(folder: Path, v: float):
    """A stand-in generated module (compiles in well under a second) living in folder/generated."""
    gen = folder / "generated"
    gen.mkdir(exist_ok=True)
    (gen / "tiny.py").write_text("# stand-in\n")
    return types.SimpleNamespace(MODEL_NAME="tiny", __file__=str(gen / "tiny.py"),
                                 NUMBA_SOURCE=TINY.format(v=repr(float(v))))


def fresh_load(mod):
    """load_step as a new process would: without this process's loaded steps."""
    particle_numba._LOADED.clear()
    return load_step(mod)


def test_cache_lives_next_to_the_module_keyed_by_hash(tmp_path):
    a = tiny_module(tmp_path, 1.0)
    assert fresh_load(a).value() == 1.0
    folder_a = particle_numba.step_folder(a)
    assert folder_a.parent == tmp_path / "generated" / "__numba_cache__"
    assert any((folder_a / "__pycache__").glob("*.nbi")), "numba wrote no cache"
    b = tiny_module(tmp_path, 2.0)                       # the model was regenerated: another text
    assert len(b.NUMBA_SOURCE) == len(a.NUMBA_SOURCE)
    assert fresh_load(b).value() == 2.0
    assert particle_numba.step_folder(b) != folder_a and not folder_a.exists()   # the stale one is gone


def test_stale_cache_folder_is_refused(tmp_path):
    """A cache folder holding another text and its machine code (here: the folder of the text that
    returns 2.0, copied under the name of the one that returns 1.0, mtimes kept): numba's own check
    (source mtime and size against its index) accepts it and would run the stale code; load_step
    compares the text with the folder's key, refuses it and rebuilds."""
    import importlib.util
    import shutil
    a = tiny_module(tmp_path, 1.0)
    (tmp_path / "other").mkdir()
    b = tiny_module(tmp_path / "other", 2.0)
    assert fresh_load(b).value() == 2.0
    folder_a, folder_b = particle_numba.step_folder(a), particle_numba.step_folder(b)
    shutil.copytree(folder_b, folder_a)
    # without the check: the file found in the folder, and its cached machine code, give 2.0
    spec = importlib.util.spec_from_file_location("stale_tiny_probe", folder_a / "tiny_step.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    assert probe.value() == 2.0
    # load_step refuses the folder and rebuilds it from the module's own text
    assert fresh_load(a).value() == 1.0
    assert (folder_a / "tiny_step.py").read_text() == a.NUMBA_SOURCE


def test_no_compiled_step_for_a_module_without_source():
    mod = types.SimpleNamespace(MODEL_NAME="x", NUMBA_SOURCE=None, NUMBA_UNSUPPORTED="erfcx has no helper")
    with pytest.raises(CompiledStepUnavailable, match="erfcx"):
        load_step(mod)


# ---- the command line and the Python API -----------------------------------------------------------
def test_cli_backend_option(capsys):
    """`balkin simulate --backend numba|numpy` runs the asked step and says which; numba where it does
    not apply is one error line naming the reason."""
    from cli_helpers import one_error_line, run
    for be in ("numba", "numpy"):
        code, out, err = run(["simulate", "ring_ei", "--n", 300, "--T", 0.2, "--dt", 0.01, "--backend", be], capsys)
        assert code == 0 and f"backend {be}" in out.splitlines()[0]
    code, out, err = run(["simulate", "ei_linear", "--n", 100, "--T", 0.1, "--dt", 0.01, "--coupling", "dense",
                          "--backend", "numba"], capsys)
    assert code != 0 and "no coupling row to carry the dense coupling" in one_error_line(err, "simulate")


def test_api_backend():
    import balkin
    r = balkin.simulate("ring_ei", n=300, T=0.1, dt=0.01, backend="numba")
    assert r.backend == "numba" and r.to_record(nbatch=2)["backend"] == "numba"
