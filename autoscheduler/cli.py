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

SCHEDULE_CHOICES = ("root", "default", "Adams2019", "Anderson2021", "Li2018", "Mullapudi2016")


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


def cmd_run(args: argparse.Namespace) -> int:
    import halide_pipelines
    from . import baselines, schedules
    from .loop_nest import loop_nest
    from .errors import UnknownPipelineError

    try:
        spec = halide_pipelines.get(args.pipeline)
    except halide_pipelines.UnknownPipelineError as e:
        raise UnknownPipelineError(str(e)) from None
    target = baselines.parse_target(args.target)
    sizes = _resolve_sizes(spec, args)
    built = spec.build(**sizes)
    pipeline = built.pipeline()

    if args.describe:
        from .dag import FunctionDAG, describe
        print(describe(FunctionDAG.from_pipeline(pipeline)))

    info: dict[str, Any] = {"pipeline": spec.name, "sizes": sizes, "target": str(target),
                            "schedule": args.schedule}
    print(f"# {spec.name} {sizes} schedule={args.schedule} target={target}")
    gpu = target.has_gpu_feature()
    timing: dict[str, float] | None = None
    if args.schedule in schedules.NAMED:
        source: str | None = schedules.named_source(args.schedule, pipeline)
        schedules.apply_source(source or "", pipeline)
        nest = loop_nest(pipeline)
        if args.repeats > 0 and not gpu:
            from .timing import time_pipeline
            timing = time_pipeline(built, pipeline, spec.make_inputs(0, **sizes), target,
                                   repeats=args.repeats)
    else:
        # The plugin searches, and its schedule is timed, in a worker process (a plugin can abort).
        result = baselines.search(pipeline, args.schedule, None, target, spec=(spec.name, sizes),
                                  timeout_s=args.search_timeout,
                                  time_repeats=0 if gpu else args.repeats)
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
            fh.write(f"# Schedule for {spec.name} {sizes}, target {target}\n" + source)
        print(f"# schedule written to {args.emit}")
    if args.print_loop_nest:
        print(nest, end="")
    if timing is not None:
        info.update(timing)
        print(f"# compile {timing['compile_s']:.2f} s; run min {timing['min_ms']:.3f} ms, "
              f"median {timing['median_ms']:.3f} ms over {args.repeats} samples")
    elif gpu:
        print("# GPU target: nothing was measured (schedules for CUDA are timed on a GPU machine)")
    if args.json:
        print(json.dumps(info))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autoschedule",
                                description="Schedule and autotune Halide pipelines.")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("list", help="list the bundled pipelines")
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("run", help="schedule a bundled pipeline, print its loop nest, time it")
    sp.add_argument("pipeline", help="a name from `autoschedule list`")
    sp.add_argument("--schedule", default="Adams2019", choices=SCHEDULE_CHOICES,
                    help="root = compute_root everything; default = Halide's all-inline; "
                         "or one of Halide's autoschedulers (default: Adams2019)")
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
    from . import cli_records
    return [cli_records.register]


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
