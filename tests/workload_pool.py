"""Run one check per workload on both cores, for tests parametrised over the bundled workloads."""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Callable, Optional, Sequence


class WorkloadPool:
    """``check(name, *args(name))`` for every name in a pool of two spawned workers, submitted all at
    once when the first test asks (heaviest first, so that the two workers finish together); each
    test then waits for its own workload. ``check`` must be importable (a module-level function)."""

    def __init__(self, check: Callable[..., dict[str, Any]], names: Sequence[str],
                 args: Callable[[str], tuple[Any, ...]], weight: Callable[[str], int]) -> None:
        self.check, self.names, self.args, self.weight = check, list(names), args, weight
        self.pool: Optional[ProcessPoolExecutor] = None
        self.futures: dict[str, Future] = {}

    def result(self, name: str) -> dict[str, Any]:
        if self.pool is None:
            self.pool = ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn"))
            order = sorted(self.names, key=lambda n: -self.weight(n))
            self.futures = {n: self.pool.submit(self.check, n, *self.args(n)) for n in order}
        return self.futures[name].result(timeout=1800)

    def close(self) -> None:
        if self.pool is not None:
            for f in self.futures.values():
                f.cancel()
            self.pool.shutdown(wait=True, cancel_futures=True)
