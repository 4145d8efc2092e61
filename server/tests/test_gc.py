"""Server processes set the garbage collector up for batches (``plait_server.cli.tune_gc``):
what was imported at start-up is frozen out of the collector's walks, young objects are
collected in bigger generations, and cycles made afterwards are still collected."""

from __future__ import annotations

import gc
import weakref

from plait_server.cli import GC_THRESHOLD, tune_gc


class _Node:
    def __init__(self) -> None:
        self.me = self


def test_tune_gc_freezes_what_is_loaded_raises_the_threshold_and_still_collects_cycles():
    before = gc.get_threshold()
    try:
        tracked = len(gc.get_objects())
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLD
        assert GC_THRESHOLD[0] > 700  # CPython's default young threshold
        # Everything alive at start-up is out of the collector's sight.
        assert gc.get_freeze_count() >= tracked // 2
        # A cycle made while serving is still found and freed by a collection.
        node = _Node()
        ref = weakref.ref(node)
        del node
        gc.collect()
        assert ref() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
