"""The Kubernetes manifests: rendered by kustomize (base and GPU overlay), valid against the Kubernetes schemas
(KEDA's ScaledObject against its own), and wired together: selectors, probes, GPU limits, stream names."""

from __future__ import annotations

import json
import re
import shutil

import jsonschema
import kubernetes_validate
import pytest
from deploy_files import (
    DOCKER,
    K8S,
    SCHEMAS,
    by_kind,
    copy_sources,
    kustomize,
    load_yaml_documents,
    one,
    parse_dockerfile,
    settings_fields,
)

# The oldest Kubernetes release still commonly run, and the newest the validator knows.
KUBERNETES_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
CRD_SCHEMAS = {("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.json"}


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return kustomize(K8S / "base")


@pytest.fixture(scope="module")
def gpu() -> list[dict]:
    return kustomize(K8S / "overlays" / "gpu")


@pytest.fixture(scope="module")
def jobs() -> list[dict]:
    return [doc for path in sorted((K8S / "jobs").glob("*.yaml")) for doc in load_yaml_documents(path)]


def schema_errors(doc: dict, version: str) -> list[str]:
    crd = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if crd:
        validator = jsonschema.Draft202012Validator(json.loads((SCHEMAS / crd).read_text()))
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path))}: {exc.message}"]
    return []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_manifests_match_their_schemas(base, gpu, jobs, version):
    for doc in base + gpu + jobs:
        assert schema_errors(doc, version) == [], f"{doc['kind']}/{doc['metadata']['name']}"


def test_strict_validation_rejects_a_misspelt_field(base):
    """What the test above relies on: an unknown field fails, for core kinds and for the ScaledObject."""
    deployment = json.loads(json.dumps(one(base, "Deployment", "tadm-worker")))
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 10
    assert schema_errors(deployment, KUBERNETES_VERSIONS[-1])
    scaled = json.loads(json.dumps(one(base, "ScaledObject", "tadm-worker")))
    scaled["spec"]["triggers"][0]["metadata"]["lagCount"] = 4  # KEDA wants strings
    assert schema_errors(scaled, KUBERNETES_VERSIONS[-1])


def test_the_base_has_every_part(base):
    kinds = {(d["kind"], d["metadata"]["name"]) for d in base}
    assert {
        ("Deployment", "tadm-api"), ("Service", "tadm-api"), ("HorizontalPodAutoscaler", "tadm-api"),
        ("Deployment", "tadm-worker"), ("PodDisruptionBudget", "tadm-worker"), ("ScaledObject", "tadm-worker"),
        ("StatefulSet", "tadm-redis"), ("Service", "tadm-redis"), ("PersistentVolumeClaim", "tadm-models"),
    } <= kinds
    assert {d["metadata"].get("namespace") for d in base if d["kind"] != "Namespace"} == {"tadm"}


def pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("rendering", ["base", "gpu"])
def test_selectors_and_scale_targets_point_at_the_right_pods(rendering, request):
    docs = request.getfixturevalue(rendering)
    api, worker = one(docs, "Deployment", "tadm-api"), one(docs, "Deployment", "tadm-worker")
    assert selects(one(docs, "Service", "tadm-api")["spec"]["selector"], pod_labels(api))
    assert not selects(one(docs, "Service", "tadm-api")["spec"]["selector"], pod_labels(worker))
    assert selects(one(docs, "PodDisruptionBudget", "tadm-worker")["spec"]["selector"]["matchLabels"], pod_labels(worker))
    assert one(docs, "HorizontalPodAutoscaler", "tadm-api")["spec"]["scaleTargetRef"]["name"] == "tadm-api"
    assert one(docs, "ScaledObject", "tadm-worker")["spec"]["scaleTargetRef"]["name"] == "tadm-worker"
    # Autoscalers own the replica counts: a `replicas` in the Deployment would fight them on every apply.
    assert "replicas" not in api["spec"] and "replicas" not in worker["spec"]


@pytest.mark.parametrize("rendering", ["base", "gpu"])
def test_pods_reference_only_rendered_config_and_settings(rendering, request):
    docs = request.getfixturevalue(rendering)
    config_maps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    known = settings_fields()
    for name in ("tadm-api", "tadm-worker"):
        container = one(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        for source in container["envFrom"]:
            if "configMapRef" in source:
                data = config_maps[source["configMapRef"]["name"]]["data"]
                assert set(data) <= known
            else:
                assert source["secretRef"]["name"] == "tadm-secrets"  # created by hand, see deploy/README.md
        for variable in container.get("env", []):
            if variable["name"].startswith("TADM_"):
                assert variable["name"] in known


@pytest.mark.parametrize("rendering", ["base", "gpu"])
def test_worker_probes_drain_and_disruption_budget(rendering, request):
    docs = request.getfixturevalue(rendering)
    pod = one(docs, "Deployment", "tadm-worker")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    probe_scripts = set()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = container[probe]["exec"]["command"]
        probe_scripts.update(word for word in command if word.endswith(".py"))
    # The probe script is copied into both worker images at that path.
    for stage in (s for s in parse_dockerfile(DOCKER / "worker.Dockerfile") if s.name in ("cpu", "gpu")):
        destinations = {copy_sources(i)[1] for i in stage.all("COPY")}
        assert probe_scripts <= destinations
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # model loading takes minutes
    assert pod["terminationGracePeriodSeconds"] >= 120
    assert one(docs, "PodDisruptionBudget", "tadm-worker")["spec"]["maxUnavailable"] == 1
    names = {e["name"]: e for e in container["env"]}
    assert names["TADM_WORKER_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_gpu_overlay_gives_each_worker_one_gpu_and_the_cuda_image(base, gpu):
    container = one(gpu, "Deployment", "tadm-worker")["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["image"] == "tadm-worker:gpu"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TADM_DEVICE"] == "cuda" and env["TADM_MODEL"].startswith("/models/")
    base_container = one(base, "Deployment", "tadm-worker")["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in base_container["resources"].get("limits", {})
    assert base_container["image"] == "tadm-worker:cpu"


def test_scaledobject_watches_the_streams_and_group_the_service_uses(base):
    from service.config import Settings
    from service.redis_keys import PRIORITIES, RedisKeys

    keys = RedisKeys(Settings().key_prefix)
    model_id = one(base, "ConfigMap", "tadm-model")["data"]["model_id"]
    triggers = one(base, "ScaledObject", "tadm-worker")["spec"]["triggers"]
    assert {t["metadata"]["stream"] for t in triggers} == {keys.stream(model_id, p) for p in PRIORITIES}
    assert {t["metadata"]["consumerGroup"] for t in triggers} == {keys.group}
    redis_service = one(base, "Service", "tadm-redis")
    port = redis_service["spec"]["ports"][0]["port"]
    address = f"{redis_service['metadata']['name']}.{redis_service['metadata']['namespace']}.svc.cluster.local:{port}"
    assert {t["metadata"]["address"] for t in triggers} == {address}


def test_an_overlay_model_id_renames_the_watched_streams(tmp_path):
    """The model-streams component writes an overlay's model id into both stream names."""
    model_id = "0123456789abcdef"
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree)  # kustomize refuses absolute resource paths: an overlay beside the real ones
    overlay = tree / "overlays" / "test"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../gpu\n"
        f"configMapGenerator:\n  - name: tadm-model\n    behavior: merge\n    literals:\n      - model_id={model_id}\n"
        "components:\n  - ../../components/model-streams\n"
    )
    docs = kustomize(overlay)
    streams = [t["metadata"]["stream"] for t in one(docs, "ScaledObject", "tadm-worker")["spec"]["triggers"]]
    assert streams == [f"tadm:jobs:{model_id}:interactive", f"tadm:jobs:{model_id}:background"]


def test_models_pull_job_runs_the_documented_command(jobs):
    from service.cli import build_parser

    (job,) = by_kind(jobs, "Job", "tadm-models-pull")
    container = job["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(container["args"])
    assert (args.command, args.models_command, args.name) == ("models", "pull", "sd21-base")
    gpu_model = re.escape(str(args.output))
    assert re.search(gpu_model, (K8S / "overlays" / "gpu" / "worker-gpu.yaml").read_text())
