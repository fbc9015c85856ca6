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
import os
from pathlib import Path

import numpy as np

from .atomic import atomic_open


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


class Record:
    """What every result offers beyond its attributes (mixed into the result classes):

    * ``to_dict(**kw)``: the JSON schema of README.md ("Output schema"), keyed by population name,
      plain Python numbers and lists (``to_record`` of the class, cleaned);
    * ``to_json(path=None, **kw)``: that dict as JSON text, or written atomically to ``path``;
    * ``population(name, **kw)``: the per-population block of ``to_dict`` (lambda, gbar, mean,
      variance ... on the position grid ``to_dict()["theta"]``)."""

    def to_dict(self, **kw) -> dict:
        return _clean(self.to_record(**kw))

    def to_json(self, path=None, **kw) -> str | None:
        rec = self.to_dict(**kw)
        if path is None:
            return json.dumps(rec, indent=1)
        write_json(path, rec)
        return None

    def population(self, name: str, **kw) -> dict:
        rec = self.to_dict(**kw)
        model = getattr(self, "model", None)
        names = list(getattr(model, "populations", None) or getattr(self, "populations", None) or ())
        if name not in names or not isinstance(rec.get(name), dict):
            raise KeyError(f"no population {name!r} in this result; populations: {names}")
        return rec[name]


def write_json(path, record: dict) -> None:
    """Write the record as JSON, atomically (solvers.atomic): a temporary file in the same folder is
    renamed over ``path`` only once complete.  Non-finite numbers are refused before anything is
    written."""
    text = json.dumps(_clean(record), indent=1) + "\n"
    with atomic_open(path, "w") as fh:
        fh.write(text)


# ---- output paths, checked before a long computation starts --------------------------------------

class OutputPathError(ValueError):
    """An output path (--json, --npz, --plots) that cannot be written."""


def _writable_folder(folder: Path, flag: str, path) -> None:
    if not folder.exists():
        raise OutputPathError(f"{flag} {path}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputPathError(f"{flag} {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"{flag} {path}: the folder {folder} is not writable")


def _path_text(path, flag: str, what: str) -> str:
    """The path as text; refuse an empty name or one with a NUL character."""
    text = os.fspath(path)
    if not text.strip():
        raise OutputPathError(f"{flag}: the {what} name is empty")
    if "\0" in text:
        raise OutputPathError(f"{flag} {text!r}: the {what} name contains a NUL character")
    return text


def check_output_file(path, flag: str = "--json") -> None:
    """Refuse an output file that cannot be written: empty, a folder, in a missing or read-only
    folder, or an existing file that is not writable.  Writes nothing."""
    if path is None:
        return
    text = _path_text(path, flag, "file")
    p = Path(text).expanduser()
    if text.endswith(os.sep) or p.is_dir():
        raise OutputPathError(f"{flag} {text}: is a folder, not a file (give a file name, e.g. "
                              f"{Path(text) / ('out' + ('.npz' if flag == '--npz' else '.json'))})")
    if p.exists() and not p.is_file():
        raise OutputPathError(f"{flag} {text}: exists and is not a regular file")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputPathError(f"{flag} {text}: the file exists and is not writable")
    _writable_folder(p.parent if str(p.parent) else Path("."), flag, text)


def check_output_dir(path, flag: str = "--plots") -> None:
    """Refuse an output folder that cannot be used: an existing non-folder, or a folder that neither
    exists nor can be created (its nearest existing ancestor must be a writable folder)."""
    if path is None:
        return
    text = _path_text(path, flag, "folder")
    p = Path(text).expanduser()
    if p.exists():
        if not p.is_dir():
            raise OutputPathError(f"{flag} {text}: exists and is not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise OutputPathError(f"{flag} {text}: the folder is not writable")
        return
    anc = p.absolute().parent
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise OutputPathError(f"{flag} {text}: {anc} is not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise OutputPathError(f"{flag} {text}: cannot create it, {anc} is not writable")

