"""``tadm serve --dev``: the whole service on one machine, the same code paths as production.

An embedded Redis when ``TADM_REDIS_URL`` is unset, storage under ``./.tadm/``, one CPU worker subprocess, and
the API on 127.0.0.1:8000 in this process. The worker runs the shipped ``nano`` model (a preview until it reaches
its quality bar, which the log, ``/readyz`` and ``/v1/info`` say with its measured PSNR-Y), or, where its weights
are missing (e.g. a scale not shipped), the ``tiny`` preset with random weights, which they say loudly.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from ..queue.registry import WorkerInfo, preview_notice, untrained_warning
from ..redis_keys import RedisKeys, as_str

logger = logging.getLogger(__name__)

# The `tadm` command in a child process, on this interpreter (whatever its console script is called).
TADM_COMMAND = [sys.executable, "-m", "service.cli"]


def _announce_model(redis_url: str, keys: RedisKeys, stop: threading.Event) -> None:
    """Once the worker registered, say which model serves: shout when it is untrained, say what it measured
    when it is a preview."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        while not stop.wait(1.0):
            names: set = client.smembers(keys.workers)  # type: ignore[assignment]
            raws = [client.get(keys.worker(as_str(name))) for name in names]
            if any(raws):
                workers = [WorkerInfo.from_json(raw) for raw in raws if raw]
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

    from ..config import Settings
    from .embedded_redis import EmbeddedRedis

    root = root.resolve()
    embedded = None
    if "TADM_REDIS_URL" not in os.environ:
        embedded = EmbeddedRedis(root / "redis").start()
        os.environ["TADM_REDIS_URL"] = embedded.url
        logger.info("embedded Redis on %s (data in %s)", embedded.url, embedded.directory)
    os.environ.setdefault("TADM_STORAGE_DIR", str(root / "storage"))
    os.environ.setdefault("TADM_ALLOW_RANDOM_WEIGHTS", "true")  # dev only: run tiny until nano ships
    os.environ.setdefault("TADM_DEVICE", "cpu")
    settings = Settings()
    worker = subprocess.Popen([*TADM_COMMAND, "worker"], env=os.environ.copy())
    stop = threading.Event()
    threading.Thread(target=_announce_model, args=(settings.redis_url, RedisKeys(settings.key_prefix), stop),
                     daemon=True).start()
    try:
        from ..api.app import create_app

        logger.info("API on http://%s:%d (storage in %s)", host, port, settings.storage_dir)
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    finally:
        stop.set()
        worker.terminate()  # SIGTERM: the worker finishes its batch and exits
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
        if embedded is not None:
            embedded.stop()
    return 0
