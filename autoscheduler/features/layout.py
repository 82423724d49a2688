"""What the storage-layout decisions (``state/layout.py``: Layout, Wrap) change in the CPU features.

A Layout changes its Func's innermost storage dimension (``Featurizer.storage_dim``): the Func's
own innermost-bytes features and every reader's load classification (dense vector load, strided,
gather) follow it. A Wrap makes its consumer load a copy of the producer whose innermost dimension
is the Wrap's ``order[0]``: within the consumer's group the producer's site reports that dimension.
The copy stage itself has no row of its own (the network reads a fixed set of stages); its cost, one
pass over the producer's region read, is not modelled yet.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..state import State


def wrapped_dims(state: State, readers: Iterable[int]) -> dict[int, int]:
    """Producer -> innermost storage dimension of the copy that one of ``readers`` loads (Wrap)."""
    rs = set(readers)
    return {p: w.order[0] for (p, c), w in sorted(state.wraps().items()) if c in rs}


def layout_key(state: State, inside: Iterable[int], readers: Iterable[int]) -> tuple[Any, ...]:
    """The part of a group's cache key the layout decisions decide: the Layouts of the Funcs inside
    the group and the Wraps its readers load through."""
    rs = set(readers)
    lays = tuple(sorted((f, lay.order) for f in inside if (lay := state.layout(f)) is not None))
    wraps = tuple(sorted((p, c, w.order) for (p, c), w in state.wraps().items() if c in rs))
    return (lays, wraps)
