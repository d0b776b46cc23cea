"""deploy/compose.yaml: valid against the Compose Specification's JSON schema, and consistent with the
Dockerfiles, the env files and the service's settings."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
import yaml
from deploy_files import COMPOSE_FILE, DEPLOY, REPO, SCHEMAS, parse_dockerfile, settings_fields


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors_of(validator, document) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_matches_the_compose_specification_schema(compose, validator):
    assert errors_of(validator, compose) == []


def test_the_schema_rejects_a_misspelt_gpu_reservation(compose, validator):
    """The schema is strict enough to catch the mistakes that matter here (so the test above can fail)."""
    broken = copy.deepcopy(compose)
    device = broken["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    device["capabilites"] = device.pop("capabilities")
    assert any("capabilites" in e for e in errors_of(validator, broken))


def test_redis_is_7_with_aof_and_a_healthcheck(compose):
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "healthcheck" in redis and redis["volumes"][0].endswith(":/data")


def test_gpu_worker_reserves_an_nvidia_gpu_and_drains_on_stop(compose):
    worker = compose["services"]["worker"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert "profiles" not in worker  # the default `up` starts it
    assert int(worker["stop_grace_period"].rstrip("s")) >= 60


def test_profiles_for_cpu_workers_and_s3_storage(compose):
    services = compose["services"]
    assert services["worker-cpu"]["profiles"] == ["cpu"]
    assert services["worker-cpu"]["build"]["target"] == "cpu"
    s3 = [name for name, s in services.items() if "s3" in s.get("profiles", [])]
    assert set(s3) == {"seaweedfs", "s3-init"}
    assert "minio" not in COMPOSE_FILE.read_text().lower()  # the community edition is archived


def test_builds_name_existing_dockerfiles_and_targets(compose):
    for name, service in compose["services"].items():
        build = service.get("build")
        if not build:
            continue
        context = (DEPLOY / build["context"]).resolve()
        assert context == REPO, f"{name}: the build context must be the repository root"
        dockerfile = context / build["dockerfile"]
        assert dockerfile.is_file(), f"{name}: no {dockerfile}"
        if "target" in build:
            assert build["target"] in {s.name for s in parse_dockerfile(dockerfile)}


def test_named_volumes_and_dependencies_exist(compose):
    services, volumes = compose["services"], set(compose["volumes"])
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            assert source in volumes, f"{name} mounts undeclared volume {source}"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"


def test_env_files_exist_and_environment_names_are_settings(compose):
    known = settings_fields()
    topology = compose["x-tadm-topology"]
    for name, service in compose["services"].items():
        for env_file in service.get("env_file", []):
            if env_file.get("required", True):
                assert (DEPLOY / env_file["path"]).is_file(), f"{name}: missing env file {env_file['path']}"
        for variable in service.get("environment", {}):
            if variable.startswith("TADM_"):
                assert variable in known, f"{name}: {variable} is not a setting of service.config.Settings"
    assert {v for v in topology if v.startswith("TADM_")} <= known
