"""The ``autoschedule`` command line.

Every error the toolkit raises on purpose (a ToolkitError) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable, Sequence

from .errors import ToolkitError

SCHEDULE_CHOICES = ("auto", "random", "root", "default", "Adams2019", "Anderson2021", "Li2018",
                    "Mullapudi2016")


def _parse_sizes(items: Sequence[str]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not value.strip().lstrip("-").isdigit():
            raise ToolkitError(f"bad --size '{item}': write NAME=INTEGER, e.g. --size batch=8")
        sizes[key.strip()] = int(value)
    return sizes


def cmd_list(args: argparse.Namespace) -> int:
    import halide_pipelines
    for spec in halide_pipelines.specs():
        sizes = ",".join(f"{k}={v}" for k, v in spec.default_sizes.items())
        tags = ",".join(spec.tags)
        print(f"{spec.name:18s} {spec.description}  [{tags}] ({sizes})")
    return 0


def _resolve_sizes(spec: Any, args: argparse.Namespace) -> dict[str, int]:
    base = dict(spec.test_sizes) if args.small else {}
    try:
        return spec.sizes(**{**base, **_parse_sizes(args.size or [])})
    except ValueError as e:
        raise ToolkitError(str(e)) from None


def _load_from_file(path: str, func_name: str) -> tuple[Any, Any]:
    """Run a user's Python file and call its ``func_name()``; returns (outputs, pipeline)."""
    import importlib.util
    import os
    from .api import as_pipeline
    if not os.path.exists(path):
        raise ToolkitError(f"--from-file: no such file '{path}'")
    mod_spec = importlib.util.spec_from_file_location("user_pipeline", path)
    if mod_spec is None or mod_spec.loader is None:
        raise ToolkitError(f"--from-file: cannot load '{path}' as Python")
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise ToolkitError(f"--from-file: '{path}' has no function '{func_name}()' returning the output "
                           "Funcs (name it with --func)")
    outputs = fn()
    return outputs, as_pipeline(outputs)


def cmd_run(args: argparse.Namespace) -> int:
    import halide_pipelines
    from . import baselines, schedules
    from .loop_nest import loop_nest
    from .errors import UnknownPipelineError

    target = baselines.parse_target(args.target)
    spec = None
    built = None
    if args.from_file:
        outputs, pipeline = _load_from_file(args.from_file, args.entry)
        sizes: dict[str, int] = {}
        name = args.from_file
    else:
        if not args.pipeline:
            raise ToolkitError("name a bundled pipeline (see `autoschedule list`) or use --from-file")
        try:
            spec = halide_pipelines.get(args.pipeline)
        except halide_pipelines.UnknownPipelineError as e:
            raise UnknownPipelineError(str(e)) from None
        sizes = _resolve_sizes(spec, args)
        built = spec.build(**sizes)
        pipeline = built.pipeline()
        name = spec.name

    if args.describe:
        from .dag import FunctionDAG, describe
        print(describe(FunctionDAG.from_pipeline(pipeline)))

    info: dict[str, Any] = {"pipeline": name, "sizes": sizes, "target": str(target),
                            "schedule": args.schedule}
    print(f"# {name} {sizes} schedule={args.schedule} target={target}")
    gpu = target.has_gpu_feature()
    timing: dict[str, float] | None = None
    source: str | None
    nest: str
    if args.schedule in schedules.NAMED or args.schedule in ("auto", "random"):
        if args.schedule == "auto":
            source = _autoschedule_source(args, pipeline, target, spec, sizes, info)
        elif args.schedule == "random":
            from .apply import schedule_source
            from .dag import FunctionDAG
            from .state import random_state
            source = str(schedule_source(random_state(FunctionDAG.from_pipeline(pipeline), target,
                                                      args.seed)))
        else:
            source = schedules.named_source(args.schedule, pipeline)
        schedules.apply_source(source or "", pipeline)
        nest = loop_nest(pipeline)
        if args.repeats > 0 and not gpu and spec is not None and built is not None:
            from .timing import check_against_root, time_pipeline
            inputs = spec.make_inputs(0, **sizes)
            timing = time_pipeline(built, pipeline, inputs, target, repeats=args.repeats)
            wrong = check_against_root(spec, sizes, built, pipeline, inputs, target)
            if wrong is not None:
                raise ToolkitError(f"the {args.schedule} schedule of {name} computes wrong values ({wrong}); "
                                   "--print-schedule shows it")
            print("# output check: equal to the compute_root schedule's output")
    else:
        # The plugin searches, and its schedule is timed, in a worker process (a plugin can abort).
        result = baselines.search(pipeline, args.schedule, None, target,
                                  spec=(spec.name, sizes) if spec is not None else None,
                                  timeout_s=args.search_timeout,
                                  time_repeats=0 if gpu or spec is None else args.repeats)
        info["search_time_s"] = round(result.search_time_s, 3)
        print(f"# search time: {result.search_time_s:.2f} s")
        source, nest = result.python_source, result.loop_nest
        timing = result.extra.get("timing")
        if source is None:
            print(f"# note: {args.schedule}'s printout has no Python translation "
                  f"({result.extra.get('translation_error')}); C++ source follows")
            if args.print_schedule:
                print(result.cpp_source)
    if source is not None and args.print_schedule:
        print(source, end="")
    if args.emit:
        if source is None:
            raise ToolkitError(f"cannot emit {args.schedule}'s schedule as Python source")
        with open(args.emit, "w") as fh:
            fh.write(f"# Schedule for {name} {sizes}, target {target}\n" + source)
        print(f"# schedule written to {args.emit}")
    if args.print_loop_nest:
        print(nest, end="")
    measured_here = info.pop("_gpu_timing", None)
    if timing is None and gpu and args.repeats > 0 and spec is not None and source is not None:
        from .measure import cuda_available
        if measured_here is not None:
            timing = measured_here
        elif cuda_available():
            timing = _time_on_gpu(spec.name, sizes, source, str(target), args.repeats)
    if timing is not None:
        info.update(timing)
        print(f"# compile {timing['compile_s']:.2f} s; run min {timing['min_ms']:.3f} ms, "
              f"median {timing['median_ms']:.3f} ms over {int(timing.get('samples', args.repeats))} samples")
    elif gpu:
        print("# GPU target: nothing was measured (schedules for CUDA are timed on a GPU machine)")
    elif spec is None:
        print("# a pipeline from --from-file is not timed by `run` (no inputs to run it on)")
    if (args.schedule == "auto" and args.reference and spec is not None and not gpu
            and args.repeats > 0):
        ref = baselines.search(spec.build(**sizes).pipeline(), "Adams2019", None, target,
                               spec=(spec.name, sizes), timeout_s=args.search_timeout,
                               time_repeats=args.repeats)
        ref_ms = ref.extra["timing"]["min_ms"]
        info["adams2019_ms"] = ref_ms
        info["adams2019_search_s"] = ref.search_time_s
        ratio = f"; ours / Adams2019 = {timing['min_ms'] / ref_ms:.2f}" if timing else ""
        print(f"# reference: Adams2019 run min {ref_ms:.3f} ms, search {ref.search_time_s:.2f} s{ratio}")
    if args.json:
        print(json.dumps(info))
    return 0


def _time_on_gpu(name: str, sizes: dict[str, int], source: str, target: str, repeats: int) -> dict[str, float]:
    """Time a CUDA schedule through the measurement layer (an isolated worker, inputs on the
    device, output checked against the CPU's compute_root); a failure is a one-line error."""
    from .measure import Candidate, MeasureOptions, measure_batch
    opts = MeasureOptions(n_samples=repeats, min_sample_s=0.05, progress=False, max_consecutive_errors=0,
                          memory_limit_mb=None, build_workers=1)
    r = measure_batch([Candidate(name, dict(sizes), source, target=target)], opts)[0]
    if not r.ok or r.statistic is None:
        raise ToolkitError(f"the schedule failed on the GPU: {r.code.name}: {r.message.splitlines()[0] if r.message else ''}")
    return _timing_of(r)


def _timing_of(r: Any) -> dict[str, float]:
    """``run``'s timing fields from a successful MeasureResult."""
    return {"compile_s": float(r.build_s or 0.0), "min_ms": r.statistic * 1e3,
            "median_ms": sorted(r.samples)[len(r.samples) // 2] * 1e3, "samples": len(r.samples)}


def _autoschedule_source(args: argparse.Namespace, pipeline: Any, target: Any, spec: Any,
                         sizes: dict[str, int], info: dict[str, Any]) -> str:
    from .api import autoschedule, measure_candidates
    sched = autoschedule(pipeline, target, beam_size=args.beam_size, passes=args.passes,
                         weights=args.weights, top_k=max(1, args.benchmark_top), seed=args.seed,
                         time_budget_s=args.time_budget, state_budget=args.state_budget, db=args.db)
    if sched.record is not None:
        rec = sched.record
        info["from_db"] = {"db": args.db, "record_id": rec.id, "measured_ms": rec.statistic * 1e3}
        print(f"# history best from {args.db}: record {rec.id}, measured {rec.statistic * 1e3:.4g} ms "
              f"({rec.num_threads} threads); no search")
        return sched.candidates[0].source
    info["search_time_s"] = round(sched.search.elapsed_s, 3)
    info["predicted_cost"] = sched.predicted_cost
    print(f"# search: {sched.search.states_scored} states scored in {sched.search.elapsed_s:.2f} s; "
          f"predicted cost {sched.predicted_cost:.4g}")
    if args.benchmark_top <= 1:
        return sched.candidates[0].source
    from .measure import cuda_available
    if target.has_gpu_feature() and not cuda_available():
        print("# --benchmark-top: nothing measured (this machine has no CUDA GPU; CUDA schedules are "
              "measured on a GPU machine)")
        return sched.candidates[0].source
    from .tune.task import task_for
    task = task_for(spec if spec is not None else pipeline, str(target), sizes=sizes if spec is not None else None)
    sched = measure_candidates(task, sched, db=args.db)
    for i, r in enumerate(sched.measurements):
        measured = (f"measured {r.statistic * 1e3:.3f} ms" if r.ok and r.statistic is not None
                    else f"{r.code.name}: {r.message}")
        print(f"#   candidate {i}: predicted {sched.candidates[i].predicted_cost:.4g}, {measured}")
    info["benchmark_top_pick"] = sched.picked
    kept = sched.measurements[sched.picked]
    if target.has_gpu_feature() and kept.ok and kept.statistic is not None:
        # the kept candidate was just timed on the GPU: ``run`` reports that, not a second build
        info["_gpu_timing"] = _timing_of(kept)
    print(f"# --benchmark-top {args.benchmark_top}: keeping candidate {sched.picked}")
    return sched.candidates[sched.picked].source


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autoschedule",
                                description="Schedule and autotune Halide pipelines.")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("list", help="list the bundled pipelines")
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("run", help="schedule a bundled pipeline, print its loop nest, time it")
    sp.add_argument("pipeline", nargs="?", help="a name from `autoschedule list`")
    sp.add_argument("--schedule", default="auto", choices=SCHEDULE_CHOICES,
                    help="auto = our beam search (default); random = a random legal state (--seed); "
                         "root = compute_root everything; default = Halide's all-inline; "
                         "or one of Halide's autoschedulers")
    sp.add_argument("--from-file", metavar="FILE", help="a Python file with a function returning the "
                    "output Funcs (with estimates) of your own pipeline")
    sp.add_argument("--func", dest="entry", default="pipeline", help="the function --from-file calls (default: pipeline)")
    sp.add_argument("--seed", type=int, default=0, help="seed for --schedule random and search dropout")
    sp.add_argument("--beam-size", type=int, default=32)
    sp.add_argument("--passes", type=int, default=3)
    sp.add_argument("--time-budget", type=float, default=30.0, help="search time budget in seconds")
    sp.add_argument("--state-budget", type=int, default=0, metavar="N",
                    help="pace the beam by N states scored instead of seconds: the same candidates on "
                         "any host (the time budget still bounds the call)")
    sp.add_argument("--weights", help="cost-model weights (.pt with .json, or Halide .weights)")
    sp.add_argument("--benchmark-top", type=int, default=1, metavar="K",
                    help="measure the K best predicted schedules (isolated) and keep the fastest")
    sp.add_argument("--db", help="a tuning database: use its best measured schedule of this pipeline, target "
                    "and device when it has one (apply history best, with --schedule auto), else search")
    sp.add_argument("--no-reference", dest="reference", action="store_false",
                    help="do not time Adams2019 as a reference line")
    sp.add_argument("--target", default="host", help="Halide target string (default: host)")
    sp.add_argument("--size", action="append", metavar="NAME=N", help="override a size parameter")
    sp.add_argument("--small", action="store_true", help="use the workload's small test sizes")
    sp.add_argument("--print-loop-nest", action="store_true", help="print Halide's loop nest")
    sp.add_argument("--print-schedule", action="store_true", help="print the Python schedule source")
    sp.add_argument("--emit", metavar="FILE", help="write the Python schedule source to FILE")
    sp.add_argument("--describe", action="store_true", help="print the pipeline's stages and edges")
    sp.add_argument("--repeats", type=int, default=5, help="timing samples (0: do not time)")
    sp.add_argument("--search-timeout", type=float, default=600.0, help="seconds for a plugin search")
    sp.add_argument("--json", action="store_true", help="print a JSON summary line")
    sp.set_defaults(func=cmd_run)

    for register in _extra_commands():
        register(sub)
    return p


def _extra_commands() -> list[Callable[[Any], None]]:
    """Sub-commands that live beside the modules they drive (records, ...)."""
    from . import cli_records, cli_train, cli_tune
    return [cli_records.register, cli_train.register, cli_tune.register]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ToolkitError as e:
        print(f"autoschedule: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autoschedule: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
