"""The local engine: this process, file after file, the job set up once."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from palsy_core.engine.base import EngineOptions, FileJob, Progress, RunStats, call_job


class LocalEngine:
    def __init__(self, options: EngineOptions | None = None) -> None:
        self.options = options or EngineOptions()
        self.stats = RunStats(engine="local")

    def map(self, job: FileJob, items: Iterable[Any], desc: str = "files"
            ) -> Iterator[tuple[int, dict]]:
        """``(index, record)`` for every item, in order, as each finishes."""
        items = list(items)
        self.stats = stats = RunStats(engine="local", workers=1)
        start = time.perf_counter()
        job.setup()
        progress = Progress(len(items), desc, self.options.progress)
        try:
            stats.startup_seconds = time.perf_counter() - start
            start = time.perf_counter()
            for i, item in enumerate(items):
                record = call_job(job, item)
                stats.files += 1
                stats.failed += bool(record.get("error"))
                stats.seconds = time.perf_counter() - start
                progress.done(record)
                yield i, record
        finally:
            progress.close()
            job.close()

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
