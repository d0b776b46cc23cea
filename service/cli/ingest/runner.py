"""Ingesting the listed files, ``concurrency`` at once: each file is read, recognised as an image by its content,
looked up by SHA-256 and uploaded only when no image was made from it yet, so a run stopped anywhere (Ctrl-C,
``kill -9``, a crash) is resumed by running it again. A file that fails is a row with its error, never the end of
the run. The first Ctrl-C (or SIGTERM) starts no new file and lets those in progress finish; a second leaves them
for the next run."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import signal
from dataclasses import dataclass

import httpx

from service.client import APIError, AsyncClient, AuthError, InvalidInputError, WaitTimeoutError
from service.client.operations import Scale, closest
from service.media import sniff_format

from .estimate import AUTO_ESTIMATE_SCALE, UndecodableImage, estimated_thumbnail_bytes
from .progress import Progress
from .report import Row
from .sources import SourceFile, UnreadableFile

# How long one file may wait for its thumbnail (its job queued behind others, then verified), and for how long a
# refusal for now (503: queue full, no worker yet) or a lost connection is tried again, before the file fails.
UPLOAD_TIMEOUT_S = 900.0
RETRY_FOR_S = 600.0


@dataclass(frozen=True)
class Options:
    scale: Scale
    min_psnr_y: float | None
    min_ssimulacra2: float | None
    concurrency: int
    dry_run: bool


@dataclass(frozen=True)
class Outcome:
    """The rows of the files done, in listing order; ``fatal`` says why the run stopped early, if it did."""

    rows: list[Row]
    interrupted: bool
    fatal: str | None


def _problem(error: APIError) -> str:
    return f"{error.slug}: {error.problem.detail or error.problem.title}"


class Ingest:
    """One run over ``files``; ``client`` is None for a dry run without a reachable API."""

    def __init__(self, files: list[SourceFile], client: AsyncClient | None, options: Options,
                 progress: Progress) -> None:
        self.files = files
        self.client = client
        self.options = options
        self.progress = progress
        self.stop = asyncio.Event()
        self.interrupted = False
        self.fatal: str | None = None
        self.in_flight = 0
        self._pending = iter(enumerate(files))
        self._rows: dict[int, Row] = {}
        # Files with the same bytes under two names: the second waits for the first and is `skipped`.
        self._by_digest: dict[str, asyncio.Future[Row | None]] = {}

    async def run(self) -> Outcome:
        loop = asyncio.get_running_loop()
        workers = [asyncio.create_task(self._worker()) for _ in range(self.options.concurrency)]

        def on_signal() -> None:
            if not self.stop.is_set():
                self.interrupted = True
                self.stop.set()
                self.progress.note(f"stopping: finishing the {self.in_flight} file(s) in progress "
                                   "(Ctrl-C again to leave them for the next run)")
            else:
                for worker in workers:
                    worker.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal)
        try:
            await asyncio.wait(workers)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        for worker in workers:
            if not worker.cancelled() and worker.exception() is not None:
                raise worker.exception()  # type: ignore[misc]  # a bug, not a bad file: let it show
        rows = [self._rows[i] for i in sorted(self._rows)]
        # A Ctrl-C that came after the last file was done interrupted nothing.
        return Outcome(rows, self.interrupted and len(rows) < len(self.files), self.fatal)

    async def _worker(self) -> None:
        while not self.stop.is_set():
            try:
                index, file = next(self._pending)
            except StopIteration:
                return
            self.in_flight += 1
            try:
                row = await self._process(file)
            finally:
                self.in_flight -= 1
            if row is not None:  # None: the run stopped (fatal) before this file was done
                self._rows[index] = row
                self.progress.advance(row.status)

    async def _process(self, file: SourceFile) -> Row | None:
        try:
            data = await asyncio.to_thread(file.read)
        except UnreadableFile as exc:
            return Row.failed(file.name, f"unreadable: {exc}")
        if sniff_format(data) is None:
            return Row.failed(file.name, "not-an-image: the content is not a PNG, JPEG or WebP image", len(data))
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        earlier = self._by_digest.get(digest)
        if earlier is not None:
            first = await asyncio.shield(earlier)  # shielded: cancelling this file must not cancel the first
            return None if first is None else _copy_of(first, file.name, len(data))
        future: asyncio.Future[Row | None] = asyncio.get_running_loop().create_future()
        self._by_digest[digest] = future
        row: Row | None = None
        try:
            row = await (self._plan(file.name, data, digest) if self.options.dry_run
                         else self._store(file.name, data, digest))
        finally:  # also when cancelled: a copy waiting for this file then ends undone too
            if not future.done():
                future.set_result(row)
        return row

    async def _store(self, name: str, data: bytes, digest: str) -> Row | None:
        assert self.client is not None
        options = self.options
        try:
            done = await self.client.ingest(data, scale=options.scale, min_psnr_y=options.min_psnr_y,
                                            min_ssimulacra2=options.min_ssimulacra2, sha256=digest,
                                            timeout=UPLOAD_TIMEOUT_S, retry_for=RETRY_FOR_S)
        except AuthError as exc:  # every other file would fail the same way
            self._halt(f"the API refused the key ({_problem(exc)}): check --api-key")
            return None
        except InvalidInputError as exc:
            if exc.slug == "invalid-request":  # the request, not this file: a scale no worker serves, say
                self._halt(f"the API refused the request ({_problem(exc)})")
                return None
            return Row.failed(name, _problem(exc), len(data))
        except APIError as exc:  # refused (415, 422, 413), its job failed, or still unavailable after retries
            return Row.failed(name, _problem(exc), len(data))
        except WaitTimeoutError as exc:
            return Row.failed(name, f"timeout: {exc}; the service goes on with it, run again to pick it up",
                              len(data))
        except httpx.TransportError as exc:
            return Row.failed(name, f"network: {str(exc) or type(exc).__name__}", len(data))
        return Row.stored(name, "ingested" if done.uploaded else "skipped", done.image, len(data))

    def _halt(self, reason: str) -> None:
        """Stop the run: every file would fail for this reason. The files in progress end undone."""
        self.fatal = self.fatal or reason
        self.stop.set()

    async def _plan(self, name: str, data: bytes, digest: str) -> Row:
        """A dry run: the stored image if the API has one, else the estimated thumbnail size."""
        if self.client is not None:
            try:
                stored = await self.client.find(digest)
            except (APIError, httpx.TransportError):
                stored = []  # a dry run estimates what it cannot look up
            if stored:
                return Row.stored(name, "skipped", closest(stored, self.options.scale), len(data))
        scale = AUTO_ESTIMATE_SCALE if self.options.scale == "auto" else int(self.options.scale)
        try:
            estimate = await asyncio.to_thread(estimated_thumbnail_bytes, data, scale)
        except UndecodableImage as exc:
            return Row.failed(name, f"corrupt-image: the image cannot be decoded: {exc}", len(data))
        return Row.planned(name, len(data), estimate)


def _copy_of(first: Row, name: str, size: int) -> Row:
    """The row of a file whose bytes an earlier file of this run had: stored (or, planned, to be stored) once, so
    `skipped` here; failed as that file did."""
    if first.status in ("ingested", "skipped", "planned"):
        return dataclasses.replace(first, source=name, status="skipped", original_bytes=size)
    return dataclasses.replace(first, source=name, original_bytes=size)
