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

Memory allocation in the workers.  Dask's nanny starts worker processes with MALLOC_TRIM_THRESHOLD_
set (65536), which in glibc also fixes the mmap threshold at 128 KiB: every array above it is mapped
and unmapped anew, and the page faults cost more than the arithmetic (a ring_ei sweep point: 88 ms
of CPU instead of 32 ms, 46 ms of it in the kernel).  Each task therefore first raises, once per
worker process, glibc's trim and mmap thresholds (mallopt M_TRIM_THRESHOLD 256 MiB, M_MMAP_THRESHOLD
64 MiB; a no-op elsewhere).  This changes where memory comes from, not any result.
"""
from __future__ import annotations

import atexit
import os
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
    project's generated module is loaded there), ``params`` parameter overrides.  A module compiled
    in memory (balkin.compile) is kept as the module itself: it runs serially only (``local_only``)."""

    ref: object
    params: tuple = field(default_factory=tuple)       # ((name, value), ...) sorted

    @classmethod
    def of(cls, model, params: dict | None = None) -> "ModelRef":
        """A ModelRef for a name, a model file or a CompiledModel loaded from one (its parameter
        values are kept).  A model compiled in memory (balkin.compile) has no file a worker could
        load: it is kept as the module, for serial runs (``local_only``)."""
        from .compiled import CompiledModel
        base = {}
        if isinstance(model, CompiledModel):
            base = dict(model.params)
            model = _module_ref(model.module)
        elif not isinstance(model, (str, os.PathLike)):
            model = _module_ref(model)
        merged = {**base, **{k: float(v) for k, v in (params or {}).items()}}
        return cls(model if not isinstance(model, (str, os.PathLike)) else str(model), tuple(sorted(merged.items())))

    @property
    def local_only(self) -> bool:
        return not isinstance(self.ref, str)

    def with_params(self, params: dict) -> "ModelRef":
        return ModelRef(self.ref, tuple(sorted({**dict(self.params), **params}.items())))

    def load(self):
        """The CompiledModel (loaded generated modules are cached per process by solvers.loading)."""
        from .compiled import CompiledModel
        from .loading import load_generated
        return CompiledModel(load_generated(self.ref) if isinstance(self.ref, str) else self.ref, dict(self.params))


def _module_ref(module) -> str:
    name = getattr(module, "__name__", "")
    if name.startswith("generated."):
        return module.MODEL_NAME
    path = getattr(module, "__file__", None)
    if path:
        return path                     # a project's generated module: loaded by path in the worker
    return module                       # compiled in memory: serial runs only


def _progress(progress, done, total, label, t0):
    """Report progress to the caller's ``progress(label, done, total, seconds)`` (the CLI draws a
    bar); None: silent.  The engine itself never prints."""
    if progress:
        progress(label, done, total, time.perf_counter() - t0)


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


_TUNED = {"done": False}


def _tune_malloc() -> None:
    """Raise glibc's trim and mmap thresholds in this process (module docstring); once; no-op off glibc."""
    if _TUNED["done"]:
        return
    _TUNED["done"] = True
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 28)           # M_TRIM_THRESHOLD
        libc.mallopt(-3, 1 << 26)           # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


class _InWorker:
    """fn(item) in a worker process, after _tune_malloc (picklable: fn is a module-level function)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, item):
        _tune_malloc()
        return self.fn(item)


def _flat(items):
    for it in items:
        if isinstance(it, tuple):
            yield from it
        else:
            yield it


def run_tasks(fn, items, *, scheduler=SERIAL, progress=None, label: str = "tasks", retries: int = 3) -> list:
    """[fn(item) for item in items] computed where ``scheduler`` says (module docstring), in order.
    progress: None (silent) or a callable(label, done, total, seconds) called after each task."""
    items = list(items)
    total = len(items)
    t0 = time.perf_counter()
    if scheduler not in (None, SERIAL) and any(getattr(getattr(it, "model", it), "local_only", False) is True
                                                for it in _flat(items)):
        raise ValueError("a model compiled in memory (balkin.compile) cannot be sent to Dask workers: write "
                         "it to a model file (balkin generate) or run with scheduler='serial'")
    if scheduler in (None, SERIAL) or (scheduler == LOCAL and total <= 1) or total == 0:
        out = []
        for k, item in enumerate(items):
            out.append(fn(item))
            _progress(progress, k + 1, total, label, t0)
        return out
    try:
        from distributed import Client, as_completed
    except ImportError:
        if scheduler == LOCAL:          # the same results, one after the other
            return run_tasks(fn, items, scheduler=SERIAL, progress=progress, label=label)
        raise ImportError("running on a Dask cluster needs dask.distributed: pip install 'balkin[cluster]'") from None
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
        futures = client.map(_InWorker(fn), items, key=keys, retries=retries, pure=False)
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
