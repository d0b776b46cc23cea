"""The images start the commands deploy/README.md documents, and those commands exist: the API's app factory
imports and is callable, the worker's `tadm worker` is a registered subcommand."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tomllib

import pytest
from deploy_files import COMPOSE_FILE, DEPLOY, DOCKER, REPO, parse_dockerfile

DEPLOY_README = DEPLOY / "README.md"


def final_stage(dockerfile: str, name: str):
    return {s.name: s for s in parse_dockerfile(DOCKER / dockerfile)}[name]


def api_command() -> list[str]:
    return final_stage("api.Dockerfile", "api").last("CMD").exec_form()


def worker_command(target: str) -> list[str]:
    stage = final_stage("worker.Dockerfile", target)
    return stage.last("ENTRYPOINT").exec_form() + stage.last("CMD").exec_form()


def documented(text: str, command: list[str]) -> bool:
    """Whether ``command`` appears in ``text``, words separated by any whitespace."""
    return re.search(r"\s+".join(map(re.escape, command)), text) is not None


def test_api_image_runs_the_app_factory_under_uvicorn():
    command = api_command()
    assert command[0] == "uvicorn" and "--factory" in command
    target = next(word for word in command[1:] if ":" in word and not word.startswith("-"))
    module_name, attribute = target.split(":")
    factory = getattr(importlib.import_module(module_name), attribute)
    assert callable(factory)
    assert command[command.index("--port") + 1] == "8000"


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_worker_images_run_tadm_worker(target):
    from service.cli import build_parser

    command = worker_command(target)
    assert command == ["tadm", "worker"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["tadm"] == "service.cli:main"
    args = build_parser().parse_args(command[1:])
    assert args.command == "worker" and callable(args.handler)


def test_deploy_readme_documents_the_entrypoints_and_the_compose_command():
    text = DEPLOY_README.read_text()
    assert documented(text, api_command()[:3]), "deploy/README.md should show the API's uvicorn command"
    assert documented(text, worker_command("gpu"))
    compose = f"docker compose -f {COMPOSE_FILE.relative_to(REPO)} up"
    assert compose in text
    assert "tadm models pull sd21-base" in text


def test_compose_files_named_in_the_readmes_exist():
    for readme in (REPO / "README.md", DEPLOY_README):
        for path in re.findall(r"docker compose -f (\S+)", readme.read_text()):
            assert (REPO / path).is_file(), f"{readme.name} names {path}"


# Blocks torch (and what pulls it in) the way an image without it would: `import torch` raises ImportError.
WITHOUT_TORCH = """
import sys
for name in ("torch", "diffusers", "peft", "transformers"):
    sys.modules[name] = None
from service.api.app import create_app
from service.config import Settings
app = create_app(Settings())
print(type(app).__name__)
"""


def test_api_app_builds_without_torch():
    """The API image installs no torch: the app factory must import and build without it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TADM_")}
    result = subprocess.run([sys.executable, "-c", WITHOUT_TORCH], env={**env, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=120, check=False, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "FastAPI"
