"""Where a tuning run stands, kept beside its database so that a killed run resumes.

The measurements themselves are in the database (committed one by one as they arrive). What the
database does not hold lives in ``<db>.tune/``:

* ``<pipeline>-<key>/progress.json`` per (pipeline hash, target, device): rounds completed, the round
  in progress and the database's last record id when it began (so a restarted round proposes exactly
  the candidates it proposed before the kill, and skips those already measured), the current
  fine-tuned weights, the best time and rounds without improvement, the curve, the time split, and
  the baselines measured for reference (their schedule hashes, to label them in plots);
* ``<pipeline>-<key>/weights-rNNN.pt`` (+ ``.json``): the model after round NNN (the last two kept);
* ``weights/<target-device key>.pt`` (+ ``.json``): the latest fine-tuned weights for a target and
  device, a starting point (``--weights``) for tuning another pipeline on the same machine.

``progress.json`` is replaced atomically and names only weights files already complete on disk.
Nothing here ever deletes or rewrites a database record.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ToolkitError

FORMAT = "autoscheduler.tune-progress/1"
KEEP_WEIGHTS = 2


def tune_dir(db: str | os.PathLike[str]) -> Path:
    """``tuning.sqlite`` -> ``tuning.sqlite.tune``."""
    p = Path(db)
    return p.with_name(p.name + ".tune")


def short_key(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


@dataclass
class Progress:
    """The resumable state of one tuning run (see the module docstring)."""

    pipeline: str
    sizes: dict[str, int]
    pipeline_hash: str
    target: str
    device: str
    start_weights: str
    rounds_done: int = 0
    round_started: int | None = None
    round_start_max_id: int = 0
    weights: str | None = None  # file name (in the run folder) of the model after ``rounds_done`` rounds
    best_s: float | None = None
    no_improve: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)
    time: dict[str, float] = field(default_factory=dict)
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished: str | None = None  # why the last run stopped
    format: str = FORMAT

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Any) -> "Progress":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        names = {f.name for f in fields(cls)}
        missing = [n for n in ("pipeline", "sizes", "pipeline_hash", "target", "device", "start_weights")
                   if n not in d]
        if missing:
            raise ValueError(f"missing field(s) {missing}")
        return cls(**{k: v for k, v in d.items() if k in names})


class ProgressStore:
    """The run folder of one (pipeline hash, target, device) in a database's ``.tune`` folder."""

    def __init__(self, db: str | os.PathLike[str], name: str, pipeline_hash: str, target: str,
                 device: str) -> None:
        self.root = tune_dir(db)
        safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", name)[:40] or "pipeline"
        self.dir = self.root / f"{safe}-{short_key(pipeline_hash, target, device)}"
        self.path = self.dir / "progress.json"
        self.target, self.device = target, device

    def load(self) -> Progress | None:
        """The saved progress, None when this run never started; ToolkitError when unreadable."""
        if not self.path.exists():
            return None
        try:
            return Progress.from_json(json.loads(self.path.read_text()))
        except (OSError, ValueError, TypeError) as e:
            raise ToolkitError(f"{self.path}: unreadable tuning progress ({e}); move it aside to start the "
                               "rounds again (the measurements in the database are kept and not re-measured)"
                               ) from None

    def save(self, p: Progress) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(p.to_json(), indent=1, sort_keys=True) + "\n")
            os.replace(tmp, self.path)
        except OSError as e:
            raise ToolkitError(f"{self.path}: cannot write the tuning progress ({e.strerror}); check that "
                               "the folder beside the database is writable") from None

    def weights_path(self, round_index: int) -> Path:
        return self.dir / f"weights-r{round_index:03d}.pt"

    def prune_weights(self, keep: str | None) -> None:
        """Delete round weights older than the last KEEP_WEIGHTS (never ``keep``)."""
        pts = sorted(self.dir.glob("weights-r*.pt"))
        for pt in pts[:-KEEP_WEIGHTS]:
            if pt.name == keep:
                continue
            for f in (pt, pt.with_suffix(".json")):
                try:
                    f.unlink()
                except OSError:
                    pass

    def transfer_path(self) -> Path:
        """The latest fine-tuned weights for this target and device (any pipeline)."""
        return self.root / "weights" / f"{short_key(self.target, self.device)}.pt"


def all_progress(db: str | os.PathLike[str]) -> list[Progress]:
    """Every readable progress file beside ``db`` (for plots); unreadable ones are skipped."""
    out: list[Progress] = []
    root = tune_dir(db)
    if not root.is_dir():
        return out
    for path in sorted(root.glob("*/progress.json")):
        try:
            out.append(Progress.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return out


__all__ = ["Progress", "ProgressStore", "all_progress", "tune_dir", "FORMAT"]
