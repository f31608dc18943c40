"""Batch engines: run one per-file job over many files, here or on a Ray cluster.

    from palsy_core.engine import EngineOptions, open_engine

    with open_engine(EngineOptions(engine="ray", workers=2)) as engine:
        for index, record in engine.map(job, paths, desc="extract"):
            ...  # records arrive in input order, as they finish: write them out now
    engine.stats  # files, failures, retries, workers, seconds, files per node

``local`` (the default) needs nothing beyond the runtime; ``ray`` imports Ray only when chosen.
The job (``base.FileJob``) is the same object on both engines, so their outputs are the same.
"""

from __future__ import annotations

from palsy_core.engine.base import (
    ADDRESS_ENV,
    ENGINES,
    EngineOptions,
    FileJob,
    RunStats,
)
from palsy_core.engine.local import LocalEngine

__all__ = ["ADDRESS_ENV", "ENGINES", "EngineOptions", "FileJob", "LocalEngine", "RunStats",
           "open_engine"]


def open_engine(options: EngineOptions | None = None):
    """A ``LocalEngine``, or for ``engine="ray"`` a ``RayEngine``; both are context managers."""
    options = options or EngineOptions()
    if options.engine == "ray":
        from palsy_core.engine.cluster import RayEngine

        return RayEngine(options)
    return LocalEngine(options)
