"""Tuning curves: the best time found against the number of candidates measured, from a tuning database.

One curve per (pipeline, target, device) in the database (or only the pipelines named), in the order
the records were committed. Reference times are drawn as horizontal lines: the baselines a tuning run
measured (``tune --baselines``, labelled in its progress beside the database; their records are not
counted as candidates) and any passed in ``lines`` (label -> milliseconds). Needs matplotlib (the
``plot`` extra); without it, a one-line ToolkitError.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import ToolkitError
from .records import Record, Records

MAX_CURVES = 8


def best_curve(records: Iterable[Record], exclude: set[str] | frozenset[str] = frozenset()) -> list[float | None]:
    """Best time so far (seconds) after each measured candidate, in commit order; None until the first
    success. Records whose schedule hash is in ``exclude`` (labelled baselines) are left out."""
    out: list[float | None] = []
    best: float | None = None
    for r in sorted(records, key=lambda r: r.id or 0):
        if r.schedule_hash in exclude:
            continue
        if r.ok and r.statistic is not None and (best is None or r.statistic < best):
            best = r.statistic
        out.append(best)
    return out


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ToolkitError("matplotlib is not installed; install the plot extra: pip install -e .[plot]") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_curves(db: str | os.PathLike[str], out: str | os.PathLike[str], *, pipelines: Iterable[str] = (),
                lines: Mapping[str, float] | None = None, title: str | None = None) -> Path:
    """Draw the tuning curves of ``db`` into the image ``out`` (PNG, or any format matplotlib knows by
    its suffix); returns its path. ``lines``: extra reference lines, label -> milliseconds."""
    from .tune.progress import all_progress
    plt = _matplotlib()
    names = set(pipelines)
    with Records(db, readonly=True) as records:
        rows = [r for r in records.all() if not names or r.pipeline_name in names]
    if not rows:
        what = f" of {', '.join(sorted(names))}" if names else ""
        raise ToolkitError(f"{db}: no measurement{what} to plot; tune first (`autoschedule tune ... --db {db}`)")
    groups: dict[tuple[str, str, str], list[Record]] = {}
    for r in rows:
        groups.setdefault((r.pipeline_hash, r.target, r.device), []).append(r)
    labelled: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for p in all_progress(db):
        labelled[(p.pipeline_hash, p.target, p.device)] = p.baselines
    keys = sorted(groups, key=lambda k: -len(groups[k]))[:MAX_CURVES]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    all_ms: list[float] = []
    many_targets = len({k[1:] for k in keys}) > 1
    for i, key in enumerate(sorted(keys, key=lambda k: (groups[k][0].pipeline_name, k))):
        recs = groups[key]
        bases = labelled.get(key, {})
        skip = {str(b["schedule_hash"]) for b in bases.values() if b.get("schedule_hash")}
        curve = best_curve(recs, skip)
        ys = [math.nan if v is None else v * 1e3 for v in curve]
        first = recs[0]
        label = first.pipeline_name + (f" [{first.target}]" if many_targets else "")
        color = f"C{i % 10}"
        ax.step(range(1, len(ys) + 1), ys, where="post", color=color, label=f"{label}: tuned")
        all_ms.extend(y for y in ys if math.isfinite(y))
        for j, (name, b) in enumerate(sorted(bases.items())):
            if b.get("statistic"):
                ms = float(b["statistic"]) * 1e3
                ax.axhline(ms, color=color, linestyle=("--", ":", "-.")[j % 3], linewidth=1.2,
                           label=f"{label}: {name} {ms:.4g} ms")
                all_ms.append(ms)
    for j, (name, ms) in enumerate(sorted((lines or {}).items())):
        ax.axhline(ms, color="black", linestyle=("--", ":", "-.")[j % 3], linewidth=1.2,
                   label=f"{name} {ms:.4g} ms")
        all_ms.append(ms)
    if not all_ms:
        plt.close(fig)
        raise ToolkitError(f"{db}: no successful measurement to plot")
    if max(all_ms) / max(min(all_ms), 1e-12) > 20:
        ax.set_yscale("log")
    ax.set_xlabel("candidates measured")
    ax.set_ylabel("best run time (ms)")
    ax.set_title(title or f"tuning curve ({Path(db).name})", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    except (OSError, ValueError) as e:
        raise ToolkitError(f"{path}: cannot write the plot ({e}); check the path and its suffix (.png)") from None
    finally:
        plt.close(fig)
    return path


__all__ = ["plot_curves", "best_curve", "MAX_CURVES"]
