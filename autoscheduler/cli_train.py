"""``autoschedule collect``, ``train`` and ``evaluate``: the cost model's data and training, from the CLI.

``autoscheduler.cli`` calls ``register(subparsers)``; each handler returns an exit code and raises
ToolkitError for anything the user can fix.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from .cli_measure import add_measure_arguments, measure_options
from .errors import ToolkitError

DEFAULT_DB = "data/db/samples.sqlite"
# Same as cost_model.dataset.DEFAULT_CACHE_DIR, without importing torch for every CLI command.
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent.parent / "data" / "db" / "feature_cache"


def cmd_collect(args: argparse.Namespace) -> int:
    from .collect import CollectOptions, collect, export_halide_samples, export_samples
    names = tuple(n for item in (args.names or []) for n in item.split(",") if n)
    if args.pipelines < 0 or args.schedules_per_pipeline < 1:
        raise ToolkitError("--pipelines must be >= 0 and --schedules-per-pipeline >= 1")
    if args.prepared:
        from .collect import collect_prepared
        opts = CollectOptions(target=args.target, measure=measure_options(args, builds_per_phase=args.builds_per_phase))
        report = collect_prepared(args.prepared, opts, args.db, deadline_s=args.deadline,
                                  log=None if args.quiet else print)
        print(report.line())
        return 0
    if args.prepare and not (args.pipelines or names):
        raise ToolkitError("--prepare FILE draws schedules of --pipelines N and/or --names; give one")
    if not (args.pipelines or names or args.remeasure or args.export or args.export_halide):
        raise ToolkitError("nothing to do: give --pipelines N (and/or --names) to collect, --remeasure FILE, "
                           "or --export / --export-halide to write the data set")
    if args.remeasure and not Path(args.remeasure).exists():
        raise ToolkitError(f"--remeasure {args.remeasure}: no such data set; give an export "
                           "(.jsonl.gz) or a tuning database (.sqlite)")
    if args.remeasure and Path(args.remeasure).resolve() == Path(args.db).resolve():
        raise ToolkitError(f"--remeasure {args.remeasure} is the database being written (--db); re-measure "
                           "into another database")
    if args.prepare:
        from .collect import prepare_candidates
        opts = CollectOptions(pipelines=args.pipelines, schedules_per_pipeline=args.schedules_per_pipeline,
                              seed_start=args.seed_start, names=names, small=args.small, target=args.target,
                              beam_fraction=args.beam_fraction, weights=args.weights,
                              search_time_budget_s=args.search_time_budget)
        n = prepare_candidates(opts, args.prepare, log=None if args.quiet else print)
        print(f"wrote {n} schedule(s) to {args.prepare}; measure them with `autoschedule collect --prepared "
              f"{args.prepare} --target ...` on the machine they are for")
        return 0
    if args.pipelines or names or args.remeasure:
        opts = CollectOptions(pipelines=args.pipelines, schedules_per_pipeline=args.schedules_per_pipeline,
                              seed_start=args.seed_start, names=names, small=args.small, target=args.target,
                              beam_fraction=args.beam_fraction, weights=args.weights,
                              search_time_budget_s=args.search_time_budget, remeasure=args.remeasure,
                              measure=measure_options(args, builds_per_phase=args.builds_per_phase))
        report = collect(opts, args.db, log=None if args.quiet else print)
        print(report.line())
    if args.export:
        n = export_samples(args.db, args.export)
        print(f"exported {n} sample(s) from {args.db} to {args.export}")
    if args.export_halide:
        n = export_halide_samples(args.db, args.export_halide, cache_dir=args.cache_dir)
        print(f"wrote {n} Halide .sample file(s) to {args.export_halide} (index.tsv names the pipeline ids)")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from cost_model.dataset import read_sample_sets
    from .stage_profile import profile_samples
    sources = args.db or [DEFAULT_DB]
    for src in sources:
        if not Path(src).exists():
            raise ToolkitError(f"--db {src}: no such data set; give an export (.jsonl.gz) or a database (.sqlite)")
    names = [n for item in (args.names or []) for n in item.split(",") if n] or None
    try:
        k, n = (int(x) for x in args.shard.split("/"))
        if not 0 <= k < n:
            raise ValueError
    except ValueError:
        raise ToolkitError(f"--shard {args.shard}: give K/N with 0 <= K < N, e.g. 0/2") from None
    shard = (k, n)
    counts = profile_samples(read_sample_sets(sources), args.out, sampled_ms=args.sampled_ms,
                             max_runs=args.max_runs, timeout_s=args.timeout, names=names,
                             shard=shard, lock=args.lock, log=None if args.quiet else print)
    print(f"profiled {counts['profiled']} schedule(s) of {counts['pipelines']} pipeline(s) into {args.out} "
          f"({counts['failed']} failed, {counts['skipped']} already there)")
    return 0


def _load(args: argparse.Namespace) -> Any:
    from cost_model.dataset import load_dataset, read_sample_sets
    t0 = time.perf_counter()
    sources = args.db or [DEFAULT_DB]
    data = load_dataset(read_sample_sets(sources), cache_dir=args.cache_dir, min_schedules=2,
                        progress=not args.quiet)
    skipped = {k: v for k, v in data.stats.items() if k not in ("samples", "groups") and v}
    print(f"loaded {len(data.pipelines)} pipeline(s), {data.num_schedules} schedule(s) from "
          f"{' + '.join(map(str, sources))} in {time.perf_counter() - t0:.1f} s"
          + (f"; skipped {skipped}" if skipped else ""))
    if not data.pipelines:
        raise ToolkitError(f"{' + '.join(map(str, sources))}: no pipeline with two or more successful "
                           "measurements; collect some with `autoschedule collect`")
    return data


def _attach_profiles(files: list[str], pipelines: list[Any]) -> int:
    """Read ``autoschedule profile`` files and attach them to the loaded pipelines."""
    from autoscheduler.stage_profile import read_profiles
    from cost_model.dataset import attach_profiles
    profiles: dict[Any, Any] = {}
    for f in files:
        if not Path(f).exists():
            raise ToolkitError(f"--profiles {f}: no such file; make it with `autoschedule profile`")
        profiles.update(read_profiles(f))
    return attach_profiles(pipelines, profiles)


def _train_setup(args: argparse.Namespace) -> tuple[Any, Any]:
    """(TrainOptions, OurNetConfig) from ``train``'s and ``crossval``'s shared options, checked
    before any data is loaded."""
    from cost_model.our_net import OurNetConfig
    from cost_model.train import TrainOptions
    if args.hoisted_math and not args.math_inputs:
        raise ToolkitError("--hoisted-math changes what --math-inputs feeds the network: give both")
    if args.ensemble < 1 or args.ensemble > 1 and args.model != "ours":
        raise ToolkitError("--ensemble N needs N >= 1, and N > 1 only with --model ours")
    if args.jobs < 1:
        raise ToolkitError(f"--jobs {args.jobs}: give one or more worker processes")
    if args.stage_weight and not args.profiles:
        raise ToolkitError("--stage-weight needs per-stage profiles: give --profiles FILE (made by "
                           "`autoschedule profile`)")
    lr = args.lr if args.lr is not None else (1e-3 if args.model == "ours" else 1e-4)
    opts = TrainOptions(epochs=args.epochs, lr=lr, batch_size=args.batch_size, patience=args.patience,
                        seed=args.seed, rank_weight=args.rank_weight, adams_weight=args.adams_weight,
                        logmse_weight=args.logmse_weight, abs_weight=args.abs_weight,
                        weight_decay=args.weight_decay, list_weight=args.list_weight,
                        stage_weight=args.stage_weight,
                        progress=not args.quiet and not args.verbose,
                        log=print if args.verbose else None)
    config = OurNetConfig(pipeline_dim=args.pipeline_dim, hidden=args.hidden, dropout=args.dropout,
                          context=not args.no_context, members=args.members, normalize=args.normalize,
                          adams_terms=args.adams_terms, prior=args.prior, math_inputs=args.math_inputs,
                          extra_inputs=args.extra_inputs, kernel_factors=args.kernel_factors,
                          hoisted_math=args.hoisted_math)
    return opts, config


def cmd_train(args: argparse.Namespace) -> int:
    from cost_model.dataset import featurizer_fingerprint
    from cost_model.train import evaluate, make_model, save_model, train_seeds
    opts, config = _train_setup(args)
    data = _load(args)
    split = data.split(args.val_fraction, args.test_fraction, bundled_in_test=not args.train_on_bundled)
    print(f"split by pipeline: {split.describe()}")
    if args.profiles:
        import numpy as np
        n = _attach_profiles(args.profiles, data.pipelines)
        n_train = sum(int(np.isfinite(p.group_share).all(axis=-1).sum()) for p in split.train
                      if p.group_share is not None)
        print(f"per-stage profiles: {n} schedule(s), {n_train} of them in the training split")
    if not split.train:
        raise ToolkitError("no training pipelines after the split; collect more pipelines or lower "
                           "--val-fraction / --test-fraction")
    model = make_model(args.model, args.init, seed=args.seed, config=config)
    before = {name: evaluate(model, ps) for name, ps in (("val", split.val), ("test", split.test)) if ps}
    seeds = list(range(args.seed, args.seed + args.ensemble))
    runs = train_seeds(args.model, args.init, config, split.train, split.val, opts, seeds, jobs=args.jobs)
    for seed, r in zip(seeds, runs):
        print(f"trained seed {seed}: {r.epochs_run} epoch(s) in {r.elapsed_s:.1f} s; best epoch {r.best_epoch}"
              + (" (early stop)" if r.stopped_early else ""))
    result = runs[0]
    if len(runs) > 1:
        result.model = _averaged(runs)
        print(f"averaged {len(runs)} networks trained from seeds {seeds[0]}..{seeds[-1]}"
              + (f" in {min(args.jobs, len(runs))} processes" if args.jobs > 1 else ""))
    metrics: dict[str, float] = {}
    for name, ps in (("train", split.train), ("val", split.val), ("test", split.test)):
        if not ps:
            continue
        s = evaluate(result.model, ps)
        metrics.update(s.as_dict(f"{name}_"))
        start = f" (start: {before[name].line()})" if name in before else ""
        print(f"  {name:5s}: {s.line()}{start}")
    last = result.history[-1] if result.history else {}
    metrics["train_loss"] = float(last.get("train_loss", math.nan))
    targets = sorted({p.target for p in data.pipelines})
    devices = sorted({p.device for p in data.pipelines})
    extra = {"train_options": opts.to_dict(), "init": args.init or "default",
             "split": {"val_fraction": args.val_fraction, "test_fraction": args.test_fraction,
                       "bundled_in_test": not args.train_on_bundled,
                       "train_pipelines": len(split.train), "val_pipelines": len(split.val),
                       "test_pipelines": len(split.test)},
             "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
             "data": " + ".join(map(str, args.db or [DEFAULT_DB])), "data_pipelines": len(data.pipelines),
             "featurizer": featurizer_fingerprint()}
    command = _command_line("train", args)
    pt, js = save_model(result.model, args.out, data_size=sum(p.num_schedules for p in split.train),
                        metrics=metrics, target=",".join(targets), machine=";".join(devices),
                        command=command, extra=extra)
    print(f"saved {pt} and {js}")
    return 0


_PARSERS: dict[str, argparse.ArgumentParser] = {}


def _command_line(name: str, args: argparse.Namespace) -> str:
    """The command that reproduces ``args`` (options left at their defaults omitted), rebuilt from
    the parsed arguments, so it is right whichever way the CLI was called (console script, tests)."""
    parser = _PARSERS.get(name)
    if parser is None:
        return "autoschedule " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    words = ["autoschedule", name]
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "func"):
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default:
            continue
        flag = max(action.option_strings, key=len)
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            words.append(flag)
        elif isinstance(value, list):
            words += [w for v in value for w in (flag, shlex.quote(str(v)))]
        else:
            words += [flag, shlex.quote(str(value))]
    return " ".join(words)


def cmd_crossval(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from cost_model.dataset import featurizer_fingerprint, fold_splits, open_text
    from cost_model.metrics import PipelineMetrics, summarize
    from cost_model.train import evaluate, train_runs
    opts, config = _train_setup(args)
    earlier: list[tuple[str, list[PipelineMetrics]]] = []
    for f in args.compare or []:
        try:
            with open_text(Path(f)) as fh:
                earlier.append((f, [PipelineMetrics(**r) for r in json.load(fh)["pipelines"]]))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ToolkitError(f"--compare {f}: not a crossval --out file ({type(e).__name__}: {e}); "
                               "give the JSON an earlier `autoschedule crossval --out` wrote") from None
    data = _load(args)
    try:
        splits = fold_splits(data.pipelines, args.folds, args.val_fraction, train_fraction=args.train_fraction)
    except ValueError as e:
        raise ToolkitError(f"crossval: {e}") from None
    if args.profiles:
        _attach_profiles(args.profiles, data.pipelines)
    seeds = list(range(args.seed, args.seed + args.ensemble))
    print(f"{args.folds} folds over {sum(len(s.test) for s in splits)} random pipelines; "
          f"{len(seeds)} network(s) per fold, {args.folds * len(seeds)} in all, {args.jobs} at a time")
    t0 = time.perf_counter()
    results = train_runs([(sp.train, sp.val, seed) for sp in splits for seed in seeds], args.model, args.init,
                         config, opts, jobs=args.jobs)
    rows: list[PipelineMetrics] = []
    folds: list[dict[str, Any]] = []
    for k, sp in enumerate(splits):
        rs = results[k * len(seeds):(k + 1) * len(seeds)]
        model = _averaged(rs)
        s = evaluate(model, sp.test)
        rows.extend(s.rows)
        folds.append({"train_pipelines": len(sp.train), "val_pipelines": len(sp.val),
                      "test_pipelines": len(sp.test), "best_epochs": [r.best_epoch for r in rs],
                      "test": s.as_dict()})
        print(f"  fold {k}: train {len(sp.train)}, val {len(sp.val)}, held out {s.line()}")
    total = summarize(rows)
    print(f"all folds ({time.perf_counter() - t0:.0f} s): {total.line()}")
    intervals: dict[str, list[float]] = {}
    if args.bootstrap > 0:
        cells, intervals = _interval_cells(rows, args.bootstrap)
        print(f"  95% interval over pipelines (bootstrap, {args.bootstrap} resamples): " + ", ".join(cells))
    if args.per_pipeline:
        for r in sorted(rows, key=lambda r: r.name):
            print(_pipeline_line(r))
    for f, other in earlier:
        cells, n = _difference_cells(other, rows, max(args.bootstrap, 1))
        print(f"  this run minus {f}, paired over {n} pipelines (95% interval): " + ", ".join(cells))
    out = {"command": _command_line("crossval", args), "folds": args.folds, "ensemble": len(seeds),
           "train_fraction": args.train_fraction,
           "model": args.model, "train_options": opts.to_dict(),
           "config": asdict(config) if args.model == "ours" else None,
           "data": " + ".join(map(str, args.db or [DEFAULT_DB])), "featurizer": featurizer_fingerprint(),
           "summary": total.as_dict(), "intervals": intervals, "fold_detail": folds,
           "pipelines": [asdict(r) for r in rows]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open_text(Path(args.out), "wt") as fh:
        json.dump(out, fh, indent=1, allow_nan=True)
    print(f"wrote {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cost_model.train import BASELINE_WEIGHTS, torch_threads
    data = _load(args)
    split = data.split(args.val_fraction, args.test_fraction, bundled_in_test=True)
    if args.split == "all":
        held = list(data.pipelines)
    else:
        held = list(getattr(split, args.split))
    if not held:
        raise ToolkitError(f"no pipeline in the '{args.split}' split of {' + '.join(args.db or [DEFAULT_DB])} "
                           f"({split.describe()}); "
                           "use --split all on tiny data sets")
    weights = args.weights or [str(BASELINE_WEIGHTS)]
    if args.profiles:
        print(f"per-stage profiles: {_attach_profiles(args.profiles, held)} schedule(s) of the "
              f"'{args.split}' pipelines")
    if args.as_searched:
        from cost_model.features_layout import kernel_factors
        for p in held:
            if p.stage_extra is not None:     # float32 [B, S, 3]: so are its factors
                p.stage_factors = kernel_factors(p.stage_extra)
        print("scored as the search ranks: each stage's predicted cost times its kernel factor")
    random_held = [p for p in held if not p.bundled]
    bundled = sorted({p.name for p in held if p.bundled})
    print(f"held-out ({args.split}) pipelines: {len(random_held)} random, {len(bundled)} bundled workload(s)")
    with torch_threads(1):
        _report(args, weights, held, random_held, bundled)
    return 0


def _report(args: argparse.Namespace, weights: list[str], held: list[Any], random_held: list[Any],
            bundled: list[str]) -> None:
    from cost_model.train import evaluate, load_model, stage_share_metrics
    first: Any = None
    for w in weights:
        model = load_model(w)
        print(f"{w} ({type(model).__name__}):")
        if random_held:
            summary = evaluate(model, random_held)
            print(f"  random pipelines: {summary.line()}")
            if args.bootstrap > 0 and summary.n_pipelines > 1:
                cells, _ = _interval_cells(summary.rows, args.bootstrap)
                print(f"    95% interval over pipelines (bootstrap, {args.bootstrap} resamples): " + ", ".join(cells))
                if first is None:
                    first = (w, summary)
                else:
                    cells, _ = _difference_cells(first[1].rows, summary.rows, args.bootstrap)
                    print(f"    minus {first[0]}, paired over the same pipelines (95% interval): " + ", ".join(cells))
        if args.profiles:
            sm = stage_share_metrics(model, held)
            print(f"  stage shares ({int(sm['n'])} profiled schedule(s)): KL {sm['stage_kl']:.3f}, "
                  f"costliest group right {100 * sm['bottleneck']:.1f}%")
        for name in bundled:
            ps = [p for p in held if p.name == name]
            print(f"  {name}: {evaluate(model, ps).line()}")
        if args.per_pipeline:
            for row in evaluate(model, held).rows:
                print(_pipeline_line(row))


_INTERVAL_METRICS = (("pairwise_20", ">20%", False), ("top1_regret", "top-1 regret", True))
"""The metrics ``evaluate`` gives intervals for: (PipelineMetrics field, label, shown as a percentage)."""


def _interval_cells(rows: list[Any], resamples: int) -> tuple[list[str], dict[str, list[float]]]:
    """Report cells of each interval metric's bootstrap interval over ``rows`` (PipelineMetrics),
    and the intervals by metric."""
    from cost_model.metrics import bootstrap_interval
    cells, found = [], {}
    for metric, label, pct in _INTERVAL_METRICS:
        lo, hi = bootstrap_interval([getattr(r, metric) for r in rows], resamples)
        found[metric] = [lo, hi]
        cells.append(f"{label} {_num(lo, pct)} to {_num(hi, pct)}")
    return cells, found


def _difference_cells(first: list[Any], rows: list[Any], resamples: int) -> tuple[list[str], int]:
    """Report cells of ``rows`` minus ``first`` per interval metric, paired by pipeline, and how
    many pipelines both rate."""
    from cost_model.metrics import paired_difference
    cells, n = [], 0
    for metric, label, pct in _INTERVAL_METRICS:
        mean, lo, hi, n = paired_difference(first, rows, metric, resamples)
        cells.append(f"{label} {_num(mean, pct, True)} ({_num(lo, pct, True)} to {_num(hi, pct, True)})")
    return cells, n


def _pipeline_line(row: Any) -> str:
    """One pipeline's metrics (PipelineMetrics) as ``--per-pipeline`` prints them."""
    return (f"    {row.name:16s} {row.key} n={row.n:4d} pairwise={row.pairwise:.3f} "
            f">20%={_num(row.pairwise_20, False)} top1={100 * row.top1_regret:.1f}% tau={row.kendall_tau:.3f}")


def _averaged(runs: list[Any]) -> Any:
    """The model of one TrainResult, or several seeds' networks averaged (``OurNet.ensemble``)."""
    if len(runs) == 1:
        return runs[0].model
    from cost_model.our_net import OurNet
    return OurNet.ensemble([r.model for r in runs if isinstance(r.model, OurNet)])


def _num(v: float, pct: bool, sign: bool = False) -> str:
    """A metric for the evaluate report: a fraction as 0.872, a regret as 27.3% (``sign``: +/-)."""
    if v != v:
        return "n/a"
    flag = "+" if sign else ""
    return f"{100 * v:{flag}.1f}%" if pct else f"{v:{flag}.3f}"


def _common_data_args(sp: argparse.ArgumentParser, test_fraction: bool = True) -> None:
    sp.add_argument("--db", action="append",
                    help=f"tuning database (.sqlite) or sample export (.jsonl[.gz]) (default {DEFAULT_DB}); "
                    "repeat to combine several: a pipeline found in a later one takes its samples from there "
                    "only (re-measured labels replace older ones)")
    sp.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR), help="featurized-tensor cache directory")
    sp.add_argument("--val-fraction", type=float, default=0.1, help="share of pipelines for validation")
    if test_fraction:
        sp.add_argument("--test-fraction", type=float, default=0.1, help="share of pipelines held out for test")
    sp.add_argument("--quiet", action="store_true", help="no progress bars")


def register(subparsers: Any) -> None:
    """Add ``collect``, ``profile``, ``train``, ``crossval`` and ``evaluate`` to the CLI's subparsers."""
    sp = subparsers.add_parser("collect", help="measure random schedules of random pipelines (training data)")
    sp.add_argument("--pipelines", type=int, default=0, metavar="N", help="random pipelines to collect")
    sp.add_argument("--schedules-per-pipeline", type=int, default=8, metavar="K")
    sp.add_argument("--seed-start", type=int, default=0, metavar="S", help="first random pipeline seed")
    sp.add_argument("--names", action="append", metavar="A,B", help="also collect these pipelines "
                    "(bundled workloads or random_<seed>), comma-separated")
    sp.add_argument("--db", default=DEFAULT_DB, help=f"the tuning database (default {DEFAULT_DB})")
    sp.add_argument("--small", action="store_true", help="the pipelines' small test sizes")
    sp.add_argument("--target", default="host")
    sp.add_argument("--beam-fraction", type=float, default=0.5,
                    help="share of schedules from dropout beam search (the rest uniformly random)")
    sp.add_argument("--weights", help="cost model guiding the search (default: the shipped weights)")
    sp.add_argument("--search-time-budget", type=float, default=20.0)
    sp.add_argument("--remeasure", metavar="FILE", help="measure again the successful schedules of this data "
                    "set (export or database) instead of drawing new ones; --names / --pipelines narrow it")
    sp.add_argument("--prepare", metavar="FILE", help="draw the schedules here and write them to FILE "
                    "(JSON lines) instead of measuring: for a CUDA target, on a machine without a GPU")
    sp.add_argument("--prepared", metavar="FILE", help="measure the schedules of a --prepare FILE for --target")
    sp.add_argument("--deadline", type=float, default=None, metavar="S",
                    help="with --prepared: start no pipeline after S seconds")
    add_measure_arguments(sp, n_samples=3, min_sample_s=0.02, build_timeout=60.0, run_timeout=20.0)
    sp.add_argument("--builds-per-phase", type=int, default=2, help="schedules each build worker compiles "
                    "before a timing phase")
    sp.add_argument("--export", metavar="FILE", help="write the compact data set (e.g. data/samples.jsonl.gz)")
    sp.add_argument("--export-halide", metavar="DIR", help="write Halide .sample files into DIR")
    sp.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR), help="featurized-tensor cache directory")
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(func=cmd_collect)

    sp = subparsers.add_parser("profile", help="per-stage times of collected samples (Halide's profiler), "
                               "for the cost model's per-stage loss")
    sp.add_argument("--db", action="append", help=f"data sets whose successful samples to profile (default "
                    f"{DEFAULT_DB}); repeat to combine")
    sp.add_argument("--out", default="data/stage_profiles.jsonl.gz", help="profiles to append to (resumes)")
    sp.add_argument("--names", action="append", metavar="A,B", help="only these pipelines")
    sp.add_argument("--sampled-ms", type=float, default=300.0, help="run each schedule until the 1 ms sampler "
                    "has seen about this much work")
    sp.add_argument("--max-runs", type=int, default=200)
    sp.add_argument("--timeout", type=float, default=900.0, help="seconds per pipeline's child process")
    sp.add_argument("--shard", default="0/1", metavar="K/N", help="only the K-th of every N pipelines (run N "
                    "side by side, each with its own --out and the same --lock)")
    sp.add_argument("--lock", metavar="FILE", help="lock file that keeps side-by-side shards' profiled runs "
                    "from overlapping")
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(func=cmd_profile)

    sp = subparsers.add_parser("train", help="train the cost model on collected samples")
    _PARSERS["train"] = sp
    _common_data_args(sp)
    sp.add_argument("--out", required=True, help="weights to write (NAME.pt + NAME.json)")
    _model_args(sp)
    sp.add_argument("--train-on-bundled", action="store_true",
                    help="let bundled workloads into train/val (default: always held out)")
    sp.set_defaults(func=cmd_train)

    sp = subparsers.add_parser("crossval", help="rate a way of training by K-fold cross-validation over the "
                               "random pipelines (each held out once)")
    _PARSERS["crossval"] = sp
    _common_data_args(sp, test_fraction=False)
    sp.add_argument("--folds", type=int, default=5, metavar="K", help="folds (default 5)")
    sp.add_argument("--train-fraction", type=float, default=1.0, metavar="F", help="train on this share of "
                    "each fold's training pipelines (a learning curve; default all)")
    sp.add_argument("--out", required=True, metavar="FILE.json", help="per-pipeline held-out metrics and the "
                    "options, for --compare in a later run (.json.gz: compressed)")
    sp.add_argument("--compare", action="append", metavar="FILE.json", help="an earlier crossval --out: the "
                    "difference of this run from it, paired by pipeline (repeat for several)")
    sp.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                    help="resamples of the pipelines for 95%% intervals (0: none)")
    sp.add_argument("--per-pipeline", action="store_true", help="one line per pipeline as well")
    _model_args(sp)
    sp.set_defaults(func=cmd_crossval)

    sp = subparsers.add_parser("evaluate", help="ranking metrics of cost models on held-out pipelines")
    _common_data_args(sp)
    sp.add_argument("--weights", action="append", help="a model to evaluate (repeat to compare; default: "
                    "the shipped Adams2019 weights)")
    sp.add_argument("--split", choices=("test", "val", "train", "all"), default="test",
                    help="which pipelines (default: the held-out test split, bundled workloads included)")
    sp.add_argument("--per-pipeline", action="store_true", help="one line per pipeline as well")
    sp.add_argument("--profiles", action="append", metavar="FILE", help="per-stage profiles "
                    "(`autoschedule profile`): also report how well each model splits a schedule's time "
                    "between its stages")
    sp.add_argument("--as-searched", action="store_true", help="score each model as the search ranks with it: "
                    "every stage's predicted cost times its accumulator-latency factor (kernel_terms), summed; "
                    "default: the network's own prediction")
    sp.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                    help="resamples of the held-out pipelines for 95%% intervals of each model's pairwise >20%% "
                    "and top-1 regret, and of the difference of every later --weights from the first, paired by "
                    "pipeline (0: none)")
    sp.set_defaults(func=cmd_evaluate)


def _model_args(sp: argparse.ArgumentParser) -> None:
    """The network and training options ``train`` and ``crossval`` share."""
    sp.add_argument("--model", choices=("ours", "adams"), default="ours")
    sp.add_argument("--init", help="start from these weights (default: random for ours, Halide's baseline "
                    "for adams; 'random' for a random AdamsNet)")
    sp.add_argument("--epochs", type=int, default=200)
    sp.add_argument("--lr", type=float, default=None, help="default 1e-3 (ours), 1e-4 (adams)")
    sp.add_argument("--batch-size", type=int, default=256)
    sp.add_argument("--patience", type=int, default=25, help="epochs without validation improvement")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--rank-weight", type=float, default=1.0)
    sp.add_argument("--adams-weight", type=float, default=1.0)
    sp.add_argument("--logmse-weight", type=float, default=1.0)
    sp.add_argument("--abs-weight", type=float, default=0.1)
    sp.add_argument("--weight-decay", type=float, default=0.0)
    sp.add_argument("--hidden", type=int, default=96, help="our network: hidden width")
    sp.add_argument("--pipeline-dim", type=int, default=32, help="our network: pipeline embedding width")
    sp.add_argument("--members", type=int, default=1, help="our network: ensemble members (averaged)")
    sp.add_argument("--ensemble", type=int, default=1, metavar="N", help="our network: train N networks "
                    "apart (seeds --seed..--seed+N-1, each early-stopped) and ship their average")
    sp.add_argument("--jobs", type=int, default=1, metavar="J", help="with --ensemble: train that many "
                    "networks at once, one process each (one per core)")
    sp.add_argument("--dropout", type=float, default=0.0, help="our network: dropout")
    sp.add_argument("--normalize", action="store_true", help="our network: standardise the log features "
                    "with training-set statistics")
    sp.add_argument("--no-context", action="store_true", help="our network: no cross-stage context")
    sp.add_argument("--adams-terms", action="store_true", help="our network: Adams2019's hand-built cost "
                    "terms as extra inputs")
    sp.add_argument("--math-inputs", action="store_true", help="our network: each stage's costly math calls "
                    "(element-by-element libm functions such as tanh, polynomial ones such as exp) as inputs")
    sp.add_argument("--hoisted-math", action="store_true", help="our network, with --math-inputs: the math "
                    "calls each point runs under the schedule, loop-invariant calls hoisted as Halide does "
                    "(autoscheduler.features.math_inputs), instead of the algorithm's per-point count")
    sp.add_argument("--extra-inputs", action="store_true", help="our network: each stage's scatter stores, "
                    "gathered accumulator loads and accumulator-latency factor as inputs "
                    "(autoscheduler.features.extra_inputs)")
    sp.add_argument("--kernel-factors", action="store_true", help="our network: train and evaluate on the "
                    "stage costs times each stage's accumulator-latency factor, as the search ranks")
    sp.add_argument("--prior", action="store_true", help="our network: learn a correction of a frozen "
                    "AdamsNet with Halide's baseline weights (starts as that prior)")
    sp.add_argument("--list-weight", type=float, default=0.0, help="weight of the ListNet (top of the "
                    "ranking) loss")
    sp.add_argument("--profiles", action="append", metavar="FILE", help="per-stage profiles of the samples "
                    "(`autoschedule profile`); repeat to combine")
    sp.add_argument("--stage-weight", type=float, default=0.0, help="weight of the per-stage loss: the "
                    "network's share of each schedule's time per stage group against the profiled share")
    sp.add_argument("--verbose", action="store_true", help="print every epoch")


__all__ = ["register", "cmd_collect", "cmd_profile", "cmd_train", "cmd_crossval", "cmd_evaluate"]
