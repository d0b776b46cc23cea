"""The jobs a worker holds, shared by its loop, its monitor and the compute thread.

The loop holds and releases deliveries; the monitor renews them with each heartbeat, marks jobs cancelled in
Redis as cancelled here and publishes progress; the batch runner, in the compute thread, reports progress and
checks for cancellation. Each operation is a single dict or set operation, atomic under the GIL: that is all
the sharing needs, and the compute thread never waits for the event loop.
"""

from __future__ import annotations

from ..queue.job_queue import Entry


class InFlight:
    """Held deliveries, cancellations and unpublished progress, by job id."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}  # job id -> the delivery this worker holds (renewed while held)
        self.cancelled: set[str] = set()  # job ids cancelled while held
        self.progress: dict[str, float] = {}  # job id -> fraction done, not yet published

    def hold(self, entry: Entry) -> None:
        self.entries[entry.job_id] = entry

    def release(self, job_id: str) -> None:
        """Forget the job: no more renewal, progress or cancellation for it."""
        self.entries.pop(job_id, None)
        self.progress.pop(job_id, None)
        self.cancelled.discard(job_id)

    def report(self, job_id: str, fraction: float) -> None:
        self.progress[job_id] = fraction

    def cancel(self, job_id: str) -> None:
        self.cancelled.add(job_id)

    def is_cancelled(self, job_id: str) -> bool:
        return job_id in self.cancelled

    def __len__(self) -> int:
        return len(self.entries)
