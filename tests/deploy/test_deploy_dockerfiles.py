"""The Dockerfiles: every path they copy or run exists and is in the build context, the images run as a
non-root user, the API image stays torch-free, and the worker's torch is the project's pinned version."""

from __future__ import annotations

import re
import tomllib

import pytest
from deploy_files import DOCKER, REPO, copy_sources, parse_dockerfile

DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
FINAL_STAGES = {"api.Dockerfile": ["api"], "worker.Dockerfile": ["cpu", "gpu"]}


def test_both_images_exist():
    assert {p.name for p in DOCKERFILES} == set(FINAL_STAGES)


def whitelisted(dockerignore: list[str], source: str) -> bool:
    """Whether a path survives an exclude-everything-then-`!allow` .dockerignore (the style used here)."""
    allowed = [line[1:].rstrip("/") for line in dockerignore if line.startswith("!")]
    return any(source.rstrip("/") == a or source.startswith(a + "/") for a in allowed)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_path_exists_and_is_in_the_build_context(dockerfile):
    ignore_file = dockerfile.with_name(dockerfile.name + ".dockerignore")
    ignore = [line.strip() for line in ignore_file.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", "the .dockerignore should start by excluding everything"
    checked = 0
    for stage in parse_dockerfile(dockerfile):
        for instruction in stage.all("COPY") + stage.all("ADD"):
            sources, _, from_stage = copy_sources(instruction)
            if from_stage is not None:
                continue
            for source in sources:
                assert (REPO / source).exists(), f"{dockerfile.name}: COPY source {source} does not exist"
                assert whitelisted(ignore, source), f"{source} is excluded by {ignore_file.name}"
                checked += 1
    assert checked >= 4


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copy_from_names_an_earlier_stage(dockerfile):
    seen: list[str] = []
    for stage in parse_dockerfile(dockerfile):
        for instruction in stage.all("COPY"):
            _, _, from_stage = copy_sources(instruction)
            if from_stage is not None:
                assert from_stage in seen, f"COPY --from={from_stage} in stage {stage.name} names no earlier stage"
        seen.append(stage.name)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_scripts_the_image_runs_are_copied_into_it(dockerfile):
    """A HEALTHCHECK/CMD that runs /opt/tadm/x.py needs a COPY of docker/x.py to /opt/tadm/ in that stage."""
    for stage in parse_dockerfile(dockerfile):
        copied: set[str] = set()
        for instruction in stage.all("COPY"):
            sources, destination, from_stage = copy_sources(instruction)
            if from_stage is None:
                for source in sources:
                    name = source.rsplit("/", 1)[-1]
                    copied.add(destination + name if destination.endswith("/") else destination)
        for instruction in stage.all("HEALTHCHECK") + stage.all("CMD") + stage.all("RUN"):
            for script in re.findall(r"/opt/tadm/[\w.]+\.py", instruction.args):
                assert script in copied, f"{dockerfile.name}:{stage.name} runs {script} but never copies it"


@pytest.mark.parametrize(("dockerfile", "stage_name"), [(f, s) for f, ss in FINAL_STAGES.items() for s in ss])
def test_final_stages_run_as_a_non_root_user_with_a_healthcheck(dockerfile, stage_name):
    stages = {s.name: s for s in parse_dockerfile(DOCKER / dockerfile)}
    stage = stages[stage_name]
    user = stage.last("USER")
    assert user is not None and user.args not in ("root", "0"), f"{dockerfile}:{stage_name} runs as root"
    assert stage.last("HEALTHCHECK") is not None


def test_worker_default_target_is_the_gpu_image_on_a_cuda_runtime_base():
    stages = parse_dockerfile(DOCKER / "worker.Dockerfile")
    assert stages[-1].name == "gpu"  # `docker build` without --target builds the last stage
    text = (DOCKER / "worker.Dockerfile").read_text()
    base_arg = re.search(r"ARG CUDA_RUNTIME_IMAGE=(\S+)", text).group(1)
    assert base_arg.startswith("nvidia/cuda:") and "-runtime-" in base_arg
    assert stages[-1].base == "${CUDA_RUNTIME_IMAGE}"


def test_worker_installs_the_torch_version_pinned_in_pyproject():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pinned = next(d for d in extras["worker"] if d.startswith("torch=="))
    text = (DOCKER / "worker.Dockerfile").read_text()
    assert f"ARG TORCH_VERSION={pinned.removeprefix('torch==')}" in text
    assert "download.pytorch.org/whl/cu" in text  # the CUDA build, from PyTorch's index


def test_api_image_installs_no_torch_extra():
    text = (DOCKER / "api.Dockerfile").read_text()
    installs = re.findall(r'pip install "/src\[([^\]]*)\]"', text)
    assert installs, "the API image should pip install the project with extras"
    for extras in installs:
        assert not {"worker", "train", "dev"} & set(extras.split(",")), f"API image installs {extras}"
