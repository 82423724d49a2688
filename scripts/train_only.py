"""``autoschedule train`` on a machine without Halide (a lent GPU host's many CPU cores, say).

The full CLI registers every sub-command, and ``tune``'s imports Halide; ``train`` needs only the
featurized data, which the feature cache holds. Carry ``data/db/feature_cache`` (filled by a
``train`` or ``evaluate`` run here on the same data files) and run, from the repository root::

    PYTHONPATH=. python3 scripts/train_only.py train --db ... --ensemble 16 --jobs 16 --out OUT.pt

Any pipeline missing from the cache would need Halide to featurize, and fails.
"""

import argparse
import sys

from autoscheduler import cli_train
from autoscheduler.errors import ToolkitError

if __name__ == "__main__":   # the guard lets --jobs' worker processes import this file
    parser = argparse.ArgumentParser(prog="autoschedule")
    cli_train.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(sys.argv[1:])
    try:
        sys.exit(int(args.func(args)))
    except ToolkitError as e:
        print(f"autoschedule: error: {e}", file=sys.stderr)
        sys.exit(2)
