"""Independent tasks run serially or on Dask (the sweep's points and boundaries, verify's particle runs).

``run_tasks(fn, items, scheduler=...)`` returns ``[fn(item) for item in items]`` in the order of
``items``, computed

  * ``"serial"`` (or None): in this process, one after the other;
  * ``"local"``: on a dask.distributed LocalCluster of one single-threaded worker process per core,
    started on first use and kept for the life of the process (closed at exit); a single task runs
    in this process instead (starting workers would cost more than it);
  * an address (``"tcp://host:8786"``, or ``host:port``): on an existing cluster (``dask scheduler``
    and ``dask worker ADDRESS`` on the machines; the workers must be able to import balkin);
  * a ``distributed.Client``: on its cluster.

The tasks are pure functions of their item: the same item gives the same bits wherever it runs (the
floating-point operations and their order do not depend on the process), so the serial, local and
cluster results are identical.  Every task has its own key and ``retries`` (default 3): when a
worker dies, the scheduler re-runs its unfinished tasks on the others; the results are collected per
task index, so none is lost or counted twice.  ``fn`` must be importable (a module-level function)
and ``items`` picklable, e.g. models as ``ModelRef`` (a name or model file plus parameter values),
never as a loaded module.

dask[distributed] is imported only here, and only when a scheduler other than "serial" is asked for.
"""
from __future__ import annotations

import atexit
import os
import sys
import time
import uuid
from dataclasses import dataclass, field

__all__ = ["ModelRef", "run_tasks", "SERIAL", "LOCAL", "close_local_cluster"]

SERIAL = "serial"
LOCAL = "local"
_LOCAL = {"cluster": None, "client": None}


@dataclass(frozen=True)
class ModelRef:
    """A model that a worker process can load: ``ref`` a shipped model name or a model file (its
    project's generated module is loaded there), ``params`` parameter overrides."""

    ref: str
    params: tuple = field(default_factory=tuple)       # ((name, value), ...) sorted

    @classmethod
    def of(cls, model, params: dict | None = None) -> "ModelRef":
        """A ModelRef for a name, a model file or a CompiledModel loaded from one (its parameter
        values are kept).  A model compiled in memory (balkin.compile) has no file a worker could
        load: ValueError (run it with scheduler='serial', or write it to a model file)."""
        from .compiled import CompiledModel
        base = {}
        if isinstance(model, CompiledModel):
            base = dict(model.params)
            model = _module_ref(model.module)
        elif not isinstance(model, (str, os.PathLike)):
            model = _module_ref(model)
        merged = {**base, **{k: float(v) for k, v in (params or {}).items()}}
        return cls(str(model), tuple(sorted(merged.items())))

    def with_params(self, params: dict) -> "ModelRef":
        return ModelRef(self.ref, tuple(sorted({**dict(self.params), **params}.items())))

    def load(self):
        """The CompiledModel (loaded generated modules are cached per process by solvers.loading)."""
        from .compiled import CompiledModel
        from .loading import load_generated
        return CompiledModel(load_generated(self.ref), dict(self.params))


def _module_ref(module) -> str:
    name = getattr(module, "__name__", "")
    if name.startswith("generated."):
        return module.MODEL_NAME
    path = getattr(module, "__file__", None)
    if path:
        return path                     # a project's generated module: loaded by path in the worker
    raise ValueError(f"model {getattr(module, 'MODEL_NAME', '?')!r} was compiled in memory: Dask workers "
                     f"cannot load it; write it to a model file (balkin generate) or use scheduler='serial'")


def _progress(progress, done, total, label, t0):
    if progress is None or progress is False:
        return
    stream = sys.stderr if progress is True else progress
    width = 30
    k = int(width * done / max(total, 1))
    stream.write(f"\r[{label}] [{'#' * k}{'.' * (width - k)}] {done}/{total} ({time.perf_counter() - t0:.1f} s)")
    if done == total:
        stream.write("\n")
    stream.flush()


def close_local_cluster() -> None:
    """Close the LocalCluster started by scheduler='local' (also done at exit)."""
    client, cluster = _LOCAL["client"], _LOCAL["cluster"]
    _LOCAL["client"] = _LOCAL["cluster"] = None
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()


def _local_client(n_workers: int | None = None):
    if _LOCAL["client"] is None:
        from distributed import Client, LocalCluster
        n = n_workers or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        _LOCAL["cluster"], _LOCAL["client"] = cluster, Client(cluster)
        atexit.register(close_local_cluster)
    return _LOCAL["client"]


def describe(scheduler) -> str:
    """A one-line description of where tasks run."""
    if scheduler in (None, SERIAL):
        return "serial (this process)"
    if scheduler == LOCAL:
        return f"Dask LocalCluster ({os.cpu_count()} worker processes)"
    return f"Dask cluster at {getattr(scheduler, 'scheduler', None) and scheduler.scheduler.address or scheduler}"


def run_tasks(fn, items, *, scheduler=SERIAL, progress=None, label: str = "tasks", retries: int = 3) -> list:
    """[fn(item) for item in items] computed where ``scheduler`` says (module docstring), in order.
    progress: None (silent), True (a bar on stderr) or a stream."""
    items = list(items)
    total = len(items)
    t0 = time.perf_counter()
    if scheduler in (None, SERIAL) or (scheduler == LOCAL and total <= 1) or total == 0:
        out = []
        for k, item in enumerate(items):
            out.append(fn(item))
            _progress(progress, k + 1, total, label, t0)
        return out
    from distributed import Client, as_completed
    owned = None
    if scheduler == LOCAL:
        client = _local_client()
    elif isinstance(scheduler, Client):
        client = scheduler
    elif isinstance(scheduler, str):
        address = scheduler if "://" in scheduler else f"tcp://{scheduler}"
        client = owned = Client(address, timeout="20s")
    else:
        raise ValueError(f"scheduler must be 'serial', 'local', a scheduler address or a distributed.Client, "
                         f"got {scheduler!r}")
    try:
        tag = uuid.uuid4().hex[:12]
        keys = [f"{label.replace(' ', '_')}-{tag}-{k}" for k in range(total)]
        futures = client.map(fn, items, key=keys, retries=retries, pure=False)
        index = {f.key: k for k, f in enumerate(futures)}
        out = [None] * total
        got = [False] * total
        done = 0
        for fut, res in as_completed(futures, with_results=True):
            k = index[fut.key]
            if got[k]:
                raise RuntimeError(f"task {fut.key} delivered twice")      # cannot happen: keys are unique
            out[k], got[k] = res, True
            done += 1
            _progress(progress, done, total, label, t0)
        if not all(got):
            missing = [k for k, g in enumerate(got) if not g]
            raise RuntimeError(f"{len(missing)} of {total} {label} tasks returned no result: {missing[:10]}")
        return out
    finally:
        if owned is not None:
            owned.close()
