"""Worker probe (Docker healthcheck, Kubernetes startup/readiness/liveness): is this container's worker live?

A worker proves it is alive by renewing its heartbeat key in Redis (``<prefix>:worker:<name>``; on a Redis
Cluster ``{<prefix>:registry}:worker:<name>``) with a TTL of ``TADM_HEARTBEAT_TIMEOUT_SECONDS`` once its
model is loaded; the probe checks that key for the worker named ``TADM_WORKER_NAME``, or, when that is unset,
for any worker named after this host (the default name is ``<hostname>-<pid>``).

Exit 0: live. Exit 1: no live heartbeat. With ``--liveness`` an unreachable Redis counts as live: restarting a
healthy GPU worker (and reloading its model) does not bring Redis back, and the worker reconnects by itself.
"""

import argparse
import socket
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--liveness", action="store_true", help="treat an unreachable Redis as live")
    parser.add_argument("--timeout", type=float, default=3.0, help="Redis socket timeout in seconds")
    args = parser.parse_args(argv)

    import redis

    from service.config import get_settings
    from service.redis_client import connect_sync, keys_for

    settings = get_settings()
    keys = keys_for(settings)
    client = connect_sync(
        settings, socket_timeout=args.timeout, socket_connect_timeout=args.timeout, decode_responses=True
    )
    try:
        if settings.worker_name:
            names = [settings.worker_name]
        else:
            mine = f"{socket.gethostname()}-"
            names = [n for n in map(str, client.smembers(keys.workers)) if n.startswith(mine)]
        live = bool(names) and client.exists(*[keys.worker(n) for n in names]) > 0
    except redis.RedisError as exc:
        sys.stderr.write(f"redis unreachable at {settings.redis_url}: {exc}\n")
        return 0 if args.liveness else 1
    finally:
        client.close()
    if not live:
        sys.stderr.write("no live worker heartbeat for this container\n")
    return 0 if live else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
