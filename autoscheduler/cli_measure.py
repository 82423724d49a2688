"""The measurement flags that ``collect`` and ``tune`` share, and the MeasureOptions they make.

Defaults differ per command (collection times many cheap schedules, tuning fewer and more carefully),
so each command passes its own; the flags and their meaning are defined once here."""

from __future__ import annotations

import argparse
from typing import Any

from .errors import ToolkitError


def add_measure_arguments(sp: argparse.ArgumentParser, *, n_samples: int, min_sample_s: float,
                          build_timeout: float, run_timeout: float) -> None:
    sp.add_argument("--n-samples", type=int, default=n_samples, help="timing samples per schedule")
    sp.add_argument("--min-sample-s", type=float, default=min_sample_s, help="minimum seconds per timing sample")
    sp.add_argument("--threads", type=int, default=None, help="HL_NUM_THREADS (default: the core count)")
    sp.add_argument("--build-timeout", type=float, default=build_timeout)
    sp.add_argument("--run-timeout", type=float, default=run_timeout)
    sp.add_argument("--memory-limit-mb", type=int, default=8192)
    sp.add_argument("--build-workers", type=int, default=2, help="parallel build processes (more on big "
                    "machines; nothing is built while a schedule is timed)")


def measure_options(args: argparse.Namespace, **extra: Any) -> Any:
    """MeasureOptions from the flags above (and ``--quiet``); a bad value is a one-line ToolkitError."""
    from .measure import MeasureOptions
    try:
        return MeasureOptions(n_samples=args.n_samples, min_sample_s=args.min_sample_s, warmup=1,
                              num_threads=args.threads, build_timeout_s=args.build_timeout,
                              run_timeout_s=args.run_timeout, reference_timeout_s=max(60.0, args.build_timeout),
                              memory_limit_mb=args.memory_limit_mb, max_consecutive_errors=0,
                              build_workers=args.build_workers, progress=not args.quiet, **extra)
    except ValueError as e:
        raise ToolkitError(f"bad measurement option: {e}") from None
