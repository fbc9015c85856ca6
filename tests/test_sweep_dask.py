"""Sweeps and verify on a real Dask cluster: a scheduler and two single-threaded workers started as
processes on localhost (``python -m dask scheduler`` / ``python -m dask worker``), addressed as a
user would (solvers.ensemble).  The results equal the serial ones bit for bit, and a worker killed
in the middle of a sweep loses and duplicates no point."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parent.parent


def _comparable(res):
    rec = res.to_dict()
    rec.pop("scheduler")
    rec.pop("timings")
    return rec


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask")
    sf = folder / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           # what dask's nanny sets for its workers (these run without one, so that one can be killed)
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = open(folder / "log.txt", "w")
    procs = {"scheduler": subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(sf)], env=env, stdout=log, stderr=log)}
    try:
        t0 = time.time()
        while not sf.exists():
            if time.time() - t0 > 60 or procs["scheduler"].poll() is not None:
                raise RuntimeError(f"dask scheduler did not start: {(folder / 'log.txt').read_text()}")
            time.sleep(0.1)
        for name in ("w1", "w2"):
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "dask", "worker", "--scheduler-file", str(sf), "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--name", name, "--host", "127.0.0.1"],
                env=env, stdout=log, stderr=log)
        client = distributed.Client(scheduler_file=str(sf), timeout="30s")
        client.wait_for_workers(2, timeout=90)
        address = client.scheduler.address
        client.close()
        yield {"address": address, "procs": procs, "scheduler_file": sf}
    finally:
        for p in procs.values():                  # nothing in them is worth a clean exit
            if p.poll() is None:
                p.kill()
        for p in procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()


def test_sweep_on_the_cluster_equals_serial_bit_for_bit(cluster):
    from solvers.sweep import sweep
    axes = ["eps_E=0.45:0.95:3", "eps_I=0.45:0.95:3"]
    serial = sweep("ring_ei", axes, npos=16)
    remote = sweep("ring_ei", axes, npos=16, scheduler=cluster["address"])
    assert remote.scheduler == cluster["address"]
    assert _comparable(remote) == _comparable(serial)
    for p, q in zip(serial.points, remote.points):
        assert (p["_Lambda"] is None and q["_Lambda"] is None) or np.array_equal(p["_Lambda"], q["_Lambda"])
    assert len(serial.boundaries) >= 2


def test_verify_particle_runs_on_the_cluster(cluster):
    """A small verify whose particle runs go to the cluster: the report's per-seed numbers are those
    of the same run computed in this process."""
    from solvers.compiled import CompiledModel
    from solvers.verify import CoupledNoise, VerifySettings, verify
    from solvers.verify_runs import particle_run
    s = VerifySettings(sizes=(100, 200), seeds=2, T=0.5, t0=0.1, dt=0.01, bootstrap=50)
    rep = verify("ei_linear", s, progress=None, scheduler=cluster["address"])
    assert [e["n"] for e in rep.per_n] == [100, 200]
    local = particle_run((CompiledModel("ei_linear"), 100, 2, s, 1, s.dt, CoupledNoise))
    seed2 = rep.per_n[0]["mean"]["seed_means"][1]
    assert np.array_equal(seed2, local["batches"]["mean"].mean(axis=0))


def test_a_worker_killed_mid_sweep_loses_and_duplicates_no_point(cluster):
    from solvers.sweep import sweep
    axes = ["eps_E=0.45:0.95:12", "eps_I=0.45:0.95:4"]
    out, err = {}, {}

    def run():
        try:
            out["res"] = sweep("ring_ei", axes, npos=16, slow=False, scheduler=cluster["address"])
        except BaseException as exc:         # reported below
            err["exc"] = exc
    th = threading.Thread(target=run)
    th.start()
    client = distributed.Client(cluster["address"], timeout="30s")
    killed = None
    try:
        t0 = time.time()
        while th.is_alive() and time.time() - t0 < 120:
            info = client.scheduler_info()["workers"]
            busy = client.processing()
            w2 = [a for a, w in info.items() if w.get("name") == "w2"]
            if w2 and any(k.startswith("sweep_columns") for k in map(str, busy.get(w2[0], ()))):
                cluster["procs"]["w2"].send_signal(signal.SIGKILL)
                killed = time.time()
                break
            time.sleep(0.02)
    finally:
        client.close()
    th.join(300)
    assert killed is not None, "the sweep ended before a column task reached worker w2"
    assert "exc" not in err, err.get("exc")
    res = out["res"]
    idx = [tuple(p["index"]) for p in res.points]
    assert len(idx) == len(set(idx)) == 12 * 4
    assert sorted(idx) == [(i, j) for i in range(12) for j in range(4)]
    assert _comparable(res) == _comparable(sweep("ring_ei", axes, npos=16, slow=False))
