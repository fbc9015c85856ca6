"""JSON output in the schema shared by all solvers (documented in README.md, "Output schema").

    {"model": NAME, "kind": "...", "parameters": {...},
     "theta": [...]                        # position grid (one entry [0.0] without space;
                                           #  a list of [theta1, theta2] pairs on the torus)
     "E": {"lambda": [...], "gbar": [...], "mean": [...], "variance": [...], ...},  # per population
     ...extra keys (e.g. "n", "window", "stderr", "time_series")}
"""
from __future__ import annotations

import json
import math

import numpy as np


def _clean(obj):
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        if not math.isfinite(v):
            raise ValueError(f"refusing to write a non-finite number ({v}) to JSON")
        return v
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj


def theta_list(pos) -> list:
    """The schema's theta: [0.0] without space, the angles on a ring, [t1, t2] pairs on a torus."""
    if len(pos) == 0:
        return [0.0]
    if len(pos) == 1:
        return list(np.asarray(pos[0], float))
    return [list(p) for p in np.stack([np.asarray(p, float) for p in pos], axis=1)]


def state_record(model, kind: str, pos, per_population: dict, **extra) -> dict:
    """Assemble one record: per_population maps population name -> {field: array on the grid}."""
    rec = {"model": model.name, "kind": kind, "parameters": dict(model.params), "theta": theta_list(pos)}
    for name, fields in per_population.items():
        rec[name] = {k: np.asarray(v, float) for k, v in fields.items()}
    rec.update(extra)
    return _clean(rec)


def write_json(path, record: dict) -> None:
    with open(path, "w") as fh:
        json.dump(_clean(record), fh, indent=1)
        fh.write("\n")
