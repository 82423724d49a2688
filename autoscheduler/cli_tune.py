"""``autoschedule tune`` and ``autoschedule plot``: the autotuning loop and its curves, from the CLI.

``autoscheduler.cli`` calls ``register(subparsers)``; each handler returns an exit code and raises
ToolkitError for anything the user can fix (the CLI prints it as one line, exit code 2).
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from .cli_measure import add_measure_arguments, measure_options
from .errors import ToolkitError


def _parse_pairs(items: list[str] | None, what: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not key.strip() or not math.isfinite(number):
            raise ToolkitError(f"bad {what} '{item}': write NAME=NUMBER")
        out[key.strip()] = number
    return out


def cmd_tune(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .cli import _parse_sizes
    from .tune import DEFAULT_REPLAY, TuneOptions, tune
    replay = str(DEFAULT_REPLAY) if args.replay is None else (None if args.replay in ("", "none") else args.replay)
    baselines = tuple(n for item in (args.baselines or []) for n in item.split(",") if n)
    opts = TuneOptions(rounds=args.rounds, batch=args.batch, random_share=args.random_share,
                       mutate_share=args.mutate_share,
                       beam_size=args.beam_size, passes=args.passes, search_time_budget_s=args.search_time_budget,
                       time_budget_s=args.time_budget, patience=args.patience, weights=args.weights,
                       replay=replay,
                       finetune_steps=args.finetune_steps, finetune_lr=args.finetune_lr,
                       retime_rounds=args.retime_rounds, baselines=baselines, seed=args.seed,
                       progress=not args.quiet, measure=measure_options(args))
    say = (lambda s: None) if args.quiet else tqdm.write
    result = tune(args.pipeline, args.target, db=args.db, options=opts, executor=args.executor,
                  address=args.address, sizes=_parse_sizes(args.size or []), small=args.small, log=say)
    if result.not_measured is not None:
        return _searched_only(args, result)
    print(result.line())
    if result.retimed:
        best, runner = result.retimed.get("best"), result.retimed.get("runner_up")
        print("# best and runner-up re-timed interleaved: " + ", ".join(
            f"{k} {v * 1e3:.4g} ms" if v is not None else f"{k} failed"
            for k, v in (("best", best), ("runner-up", runner))))
    if result.weights_path:
        print(f"# fine-tuned weights: {result.weights_path} (for this target and device: "
              f"{result.transfer_weights_path}; pass it as --weights to tune another pipeline)")
    if args.emit and result.best_source is not None:
        with open(args.emit, "w") as fh:
            fh.write(f"# Best schedule of {result.pipeline} {result.sizes}, target {result.target}, "
                     f"{(result.best_time_s or math.nan) * 1e3:.4g} ms\n" + result.best_source)
        print(f"# schedule written to {args.emit}")
    if args.print_schedule and result.best_source is not None:
        print(result.best_source, end="")
    if args.json:
        print(json.dumps({"pipeline": result.pipeline, "sizes": result.sizes, "best_ms": None if result.best_time_s
                          is None else result.best_time_s * 1e3, "rounds_done": result.rounds_done,
                          "measured": result.measured, "skipped": result.skipped, "stopped": result.stopped,
                          "best_per_round_ms": [None if v is None else v * 1e3 for v in result.best_per_round],
                          "weights": result.weights_path, "time": vars(result.time)}))
    return 0


def _searched_only(args: argparse.Namespace, result: Any) -> int:
    """A CUDA target with no device to time on: the searched schedule (printed, or written with
    --emit), then one line saying that nothing was measured."""
    if result.best_source is not None:
        pred = "-" if result.best_predicted is None else f"{result.best_predicted:.4g}"
        source = (f"# Searched schedule of {result.pipeline} {result.sizes}, target {result.target}: not measured; "
                  f"predicted {pred} ms by the {result.start_weights}\n" + result.best_source)
        if not source.endswith("\n"):
            source += "\n"
        if args.emit:
            with open(args.emit, "w") as fh:
                fh.write(source)
            print(f"# schedule written to {args.emit}")
        else:
            print(source, end="")
    if args.json:
        print(json.dumps({"pipeline": result.pipeline, "sizes": result.sizes, "best_ms": None,
                          "best_predicted": result.best_predicted, "not_measured": result.not_measured,
                          "rounds_done": 0, "measured": 0, "candidates": len(result.proposals),
                          "time": vars(result.time)}))
    print(result.not_measured)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot_curves
    path = plot_curves(args.db, args.out, pipelines=[n for item in (args.pipeline or []) for n in item.split(",") if n],
                       lines=_parse_pairs(args.line, "--line"), title=args.title)
    print(f"wrote {path}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``tune`` and ``plot`` to the CLI's subparsers."""
    from .measure.executor import EXECUTORS   # not .tune: registering a sub-command must not import Halide
    sp = subparsers.add_parser("tune", help="autotune a bundled pipeline: search, measure, fine-tune, repeat "
                               "(resumable: rerun the same command after a kill)")
    sp.add_argument("pipeline", help="a name from `autoschedule list`")
    sp.add_argument("--db", required=True, help="the tuning database (SQLite; created if missing; progress and "
                    "fine-tuned weights go in DB.tune/ beside it)")
    sp.add_argument("--target", default="host", help="a Halide target (default host); CUDA ones such as "
                    "host-cuda are searched with the analytic GPU cost and not fine-tuned; without a CUDA device "
                    "the search runs, its best schedule is printed (or --emit), and nothing is measured")
    sp.add_argument("--size", action="append", metavar="NAME=N", help="override a size parameter")
    sp.add_argument("--small", action="store_true", help="use the workload's small test sizes")
    sp.add_argument("--rounds", type=int, default=10, help="rounds in all (a resumed run counts earlier rounds)")
    sp.add_argument("--batch", type=int, default=16, help="candidates per round")
    sp.add_argument("--random-share", type=float, default=0.2, help="share of each round drawn uniformly at random")
    sp.add_argument("--mutate-share", type=float, default=0.4,
                    help="share of each round mutated from the fastest schedules measured so far")
    sp.add_argument("--time-budget", type=float, default=None, help="seconds for this call (default: none)")
    sp.add_argument("--patience", type=int, default=3, help="stop after this many rounds without improvement")
    sp.add_argument("--weights", help="cost-model weights to start from (e.g. the fine-tuned weights of another "
                    "pipeline on this machine); ignored when resuming; CPU targets only")
    sp.add_argument("--replay", default=None, help="training data replayed while fine-tuning (an export or a "
                    "database; 'none' for none; default: the shipped demo set)")
    sp.add_argument("--finetune-steps", type=int, default=40)
    sp.add_argument("--finetune-lr", type=float, default=1e-3)
    sp.add_argument("--beam-size", type=int, default=32)
    sp.add_argument("--passes", type=int, default=3)
    sp.add_argument("--search-time-budget", type=float, default=30.0, help="seconds per search")
    sp.add_argument("--retime-rounds", type=int, default=5, help="interleaved re-timing rounds of the two best")
    sp.add_argument("--baselines", action="append", metavar="A,B", help="also measure these once for reference "
                    "(root, default, Adams2019, Mullapudi2016, Li2018); plotted as lines, never the tuned best")
    sp.add_argument("--executor", choices=EXECUTORS, default="local",
                    help="local process pool (default) or a Ray cluster")
    sp.add_argument("--address", help="the Ray cluster to join (with --executor ray; default: a local one)")
    sp.add_argument("--seed", type=int, default=0)
    add_measure_arguments(sp, n_samples=5, min_sample_s=0.1, build_timeout=120.0, run_timeout=60.0)
    sp.add_argument("--emit", metavar="FILE", help="write the best schedule's Python source to FILE")
    sp.add_argument("--print-schedule", action="store_true", help="print the best schedule's Python source")
    sp.add_argument("--json", action="store_true", help="print a JSON summary line")
    sp.add_argument("--quiet", action="store_true", help="no progress bars or round lines")
    sp.set_defaults(func=cmd_tune)

    sp = subparsers.add_parser("plot", help="draw tuning curves (best time vs candidates measured) of a database")
    sp.add_argument("--db", required=True, help="the tuning database")
    sp.add_argument("--out", required=True, help="the image to write (e.g. curve.png)")
    sp.add_argument("--pipeline", action="append", metavar="A,B", help="only these pipeline names")
    sp.add_argument("--line", action="append", metavar="NAME=MS", help="an extra reference line, in ms "
                    "(e.g. --line Adams2019=7.1)")
    sp.add_argument("--title")
    sp.set_defaults(func=cmd_plot)


__all__ = ["register", "cmd_tune", "cmd_plot"]
