"""What a worker does with a job that raised: bad input fails the job at once; anything else (storage, Redis,
device faults) is retried with backoff until its attempts run out, then dead-lettered. The job's ``error`` is
the problem of :mod:`service.errors` that the exception maps to."""

from __future__ import annotations

import logging

from PIL import UnidentifiedImageError

from model.thumbnail import ThumbnailError

from ..errors import CorruptImage, JobFailed, ProblemError
from ..queue.job_queue import Entry, JobQueue
from ..queue.jobs import Job
from . import metrics

logger = logging.getLogger(__name__)


def is_permanent(exc: BaseException) -> bool:
    """Bad input fails at once; anything else is transient."""
    if isinstance(exc, ProblemError):
        return exc.status < 500
    return isinstance(exc, (ThumbnailError, UnidentifiedImageError, ValueError))


def problem_for(exc: BaseException) -> dict:
    if isinstance(exc, ProblemError):
        return exc.to_problem()
    if isinstance(exc, (ThumbnailError, UnidentifiedImageError, ValueError)):
        return CorruptImage(str(exc)).to_problem()
    return JobFailed(f"{type(exc).__name__}: {exc}").to_problem()


class Failures:
    """Fails, retries or dead-letters a job that raised, and counts the outcome."""

    def __init__(self, queue: JobQueue, max_attempts: int) -> None:
        self.queue, self.max_attempts = queue, max_attempts

    async def handle(self, entry: Entry, job: Job, exc: BaseException) -> None:
        problem = problem_for(exc)
        if is_permanent(exc):
            logger.info("job %s failed: %s", job.id, exc)
            await self.queue.fail(entry, problem, dead_letter=False)
            metrics.JOBS.labels(job.kind, "failed").inc()
            return
        attempts = (await self.queue.get(job.id) or job).attempts
        if attempts >= self.max_attempts:
            logger.error("job %s failed %d times (%s): dead-lettered", job.id, attempts, exc)
            await self.queue.fail(entry, problem, dead_letter=True)
            metrics.JOBS.labels(job.kind, "dead_lettered").inc()
            return
        delay = await self.queue.retry_later(entry, job, attempts, problem)
        logger.warning("job %s attempt %d failed (%s: %s); retry in %.1f s", job.id, attempts,
                       type(exc).__name__, exc, delay)
        metrics.JOBS.labels(job.kind, "retried").inc()
