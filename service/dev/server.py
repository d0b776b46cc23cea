"""``tadm serve --dev``: the whole service on one machine, the same code paths as production.

An embedded Redis when ``TADM_REDIS_URL`` is unset, storage under ``./.tadm/``, one CPU worker subprocess kept
running by a supervisor, and the API on 127.0.0.1:8000 in this process. The worker runs the shipped ``nano`` model
(a preview until it reaches its quality bar, which the log, ``/readyz`` and ``/v1/info`` say with its measured
PSNR-Y), or, where its weights are missing (e.g. a scale not shipped), the ``tiny`` preset with random weights,
which they say loudly.

Its children never outlive it: SIGTERM or Ctrl-C stop the worker (it drains its batch) and Redis (it flushes its
append-only file) before the process exits, and on Linux the kernel sends them SIGTERM if it dies any other way
(``kill -9``; :mod:`service.dev.children`).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

from ..config import Settings
from ..queue.registry import WorkerInfo, preview_notice, untrained_warning
from ..redis_client import connect_sync, keys_for, server_time_sync
from ..redis_keys import as_str
from .supervisor import WorkerSupervisor

logger = logging.getLogger(__name__)

# The `tadm` command in a child process, on this interpreter (whatever its console script is called).
TADM_COMMAND = [sys.executable, "-m", "service.cli"]


class Stopped(Exception):
    """SIGTERM reached the dev server: unwind so that its children are stopped."""


def _raise_stopped(signum: int, frame: object) -> None:
    raise Stopped(signal.Signals(signum).name)


def _announce_model(settings: Settings, stop: threading.Event) -> None:
    """Once the worker registered (a heartbeat written after this server started), say which model serves:
    shout when it is untrained, say what it measured when it is a preview. Runs again after every restart of the
    worker."""
    import redis

    keys = keys_for(settings)
    client = connect_sync(settings)
    try:
        since = server_time_sync(client, keys.workers)
        while not stop.wait(1.0):
            names: set = client.smembers(keys.workers)  # type: ignore[assignment]
            raws = [client.get(keys.worker(as_str(name))) for name in names]
            workers = [info for info in (WorkerInfo.from_json(raw) for raw in raws if raw) if info.beat_at >= since]
            if workers:
                warning = untrained_warning(workers)
                if warning:
                    banner = "!" * 100
                    logger.warning("\n%s\n!!! %s\n%s", banner, warning, banner)
                elif notice := preview_notice(workers):
                    logger.warning("worker ready: %s", notice)
                else:
                    logger.info("worker ready with trained model %s", workers[0].model.model_id)
                return
    except redis.RedisError:
        pass
    finally:
        client.close()


def run_dev_server(host: str, port: int, root: Path = Path(".tadm")) -> int:
    import uvicorn

    from .embedded_redis import EmbeddedRedis

    root = root.resolve()
    # Installed before uvicorn, which restores it when it stops and then re-raises the signal it caught: the
    # default action would end the process before the `finally` below stops the children.
    signal.signal(signal.SIGTERM, _raise_stopped)
    embedded = None
    if "TADM_REDIS_URL" not in os.environ:
        embedded = EmbeddedRedis(root / "redis").start()  # refuses a directory another live Redis holds
        os.environ["TADM_REDIS_URL"] = embedded.url
        logger.info("embedded Redis on %s (data in %s)", embedded.url, embedded.directory)
    supervisor = None
    stop = threading.Event()
    try:
        os.environ.setdefault("TADM_STORAGE_DIR", str(root / "storage"))
        os.environ.setdefault("TADM_ALLOW_RANDOM_WEIGHTS", "true")  # dev only: run tiny until nano ships
        os.environ.setdefault("TADM_DEVICE", "cpu")
        settings = Settings()

        def announce(_restarts: int = 0) -> None:
            threading.Thread(target=_announce_model, args=(settings, stop), daemon=True).start()

        supervisor = WorkerSupervisor([*TADM_COMMAND, "worker"], os.environ.copy(), on_restart=announce).start()
        announce()
        from ..api.app import create_app

        logger.info("API on http://%s:%d (storage in %s)", host, port, settings.storage_dir)
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    except Stopped:
        logger.info("SIGTERM: stopping the worker and Redis")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends at once (children still follow)
        stop.set()
        if supervisor is not None:
            supervisor.stop()  # SIGTERM: the worker finishes its batch and exits
        if embedded is not None:
            embedded.stop()
    return 0
