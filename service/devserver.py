"""``tadm serve --dev``: the whole service on one machine, the same code paths as production.

An embedded Redis when ``TADM_REDIS_URL`` is unset, storage under ``./.tadm/``, one CPU worker subprocess, and
the API on 127.0.0.1:8000 in this process. The worker runs the shipped ``nano`` model, or, until that exists,
the ``tiny`` preset with random weights, which the log, ``/readyz`` and ``/v1/info`` say loudly.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

# The `tadm` entry point in a child process. (Not `-m service.cli`: as `__main__` that module would define a
# second CommandError class, and command errors would print tracebacks instead of one line.)
TADM_MAIN = "import sys; from service.cli import main; sys.exit(main())"


def _announce_model(redis_url: str, prefix: str, stop: threading.Event) -> None:
    """Once the worker registered, say which model serves, and shout when it is untrained."""
    import redis

    from .registry import untrained_warning

    client = redis.Redis.from_url(redis_url)
    try:
        while not stop.wait(1.0):
            names: set = client.smembers(f"{prefix}:workers")  # type: ignore[assignment]
            raws = [client.get(f"{prefix}:worker:{n.decode()}") for n in names]
            if any(raws):
                import json

                from .registry import ModelInfo, WorkerInfo

                workers = [WorkerInfo(d["name"], ModelInfo(**d["model"]), d["started_at"])
                           for d in (json.loads(r) for r in raws if r)]
                warning = untrained_warning(workers)
                if warning:
                    banner = "!" * 100
                    logger.warning("\n%s\n!!! %s\n%s", banner, warning, banner)
                else:
                    logger.info("worker ready with trained model %s", workers[0].model.model_id)
                return
    except redis.RedisError:
        pass
    finally:
        client.close()


def run_dev_server(host: str, port: int, root: Path = Path(".tadm")) -> int:
    import uvicorn

    from .config import Settings
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
    worker = subprocess.Popen([sys.executable, "-c", TADM_MAIN, "worker"], env=os.environ.copy())
    stop = threading.Event()
    threading.Thread(target=_announce_model, args=(settings.redis_url, settings.key_prefix, stop),
                     daemon=True).start()
    try:
        from .api.app import create_app

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
