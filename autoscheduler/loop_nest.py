"""Halide's own loop-nest printout, captured as a string.

``Func.print_loop_nest`` writes to the C++ ``stderr`` (file descriptor 2), which Python's
``sys.stderr`` redirection does not see, so the descriptor itself is redirected to a temporary file.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from typing import Iterator

import halide as hl

_fd_lock = threading.Lock()


@contextlib.contextmanager
def capture_fd2() -> Iterator[list[str]]:
    """Redirect file descriptor 2 to a temporary file; the yielded list receives its text on exit."""
    box: list[str] = []
    with _fd_lock, tempfile.TemporaryFile(mode="w+b") as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield box
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            box.append(tmp.read().decode("utf-8", errors="replace"))


def loop_nest(pipeline: hl.Pipeline) -> str:
    """The loop nest of the pipeline's current schedule (every output), as Halide prints it."""
    with capture_fd2() as box:
        pipeline.print_loop_nest()
    return box[0]
