"""The worker of the end-to-end tests: the normal worker, with a hold installed.

    python -m tests.service.held_worker HOLD_FILE

While ``HOLD_FILE`` exists, a reconstruction waits after each UNet batch (running, its progress published)
until the file goes or its jobs are all cancelled, so that a test stops, kills or cancels a job that is surely
running, however fast the machine (``Stack.hold_jobs()``). The settings come from ``TADM_*`` as for
``tadm worker``; the service itself has no such hold.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path


class FileHold:
    """A :data:`service.worker.batch.Hold` that waits while ``path`` exists. It polls in the compute thread and
    never waits for the event loop, whose heartbeats, progress and cancellation checks go on meanwhile.
    ``holding``: the job ids waiting at it now."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.holding: set[str] = set()

    def __call__(self, job_ids: list[str], all_cancelled: Callable[[], bool]) -> None:
        self.holding.update(job_ids)
        try:
            while self.path.exists() and not all_cancelled():
                time.sleep(0.05)
        finally:
            self.holding.difference_update(job_ids)


def main(argv: list[str] | None = None) -> int:
    from service.config import Settings
    from service.worker.process import run_worker

    (hold_file,) = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_worker(Settings(), hold=FileHold(Path(hold_file))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
