"""The example env file lists exactly the service's settings, with their defaults, and is current."""

from __future__ import annotations

import importlib.util

import pytest
from deploy_files import DEPLOY, ENV_EXAMPLE, K8S, parse_env_file, settings_fields

# The only variables outside the TADM_ prefix the example may carry (read by boto3).
NON_TADM = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def load_generator():
    spec = importlib.util.spec_from_file_location("env_example", DEPLOY / "env_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_setting_is_in_the_example_and_every_example_variable_is_a_setting():
    active, commented = parse_env_file(ENV_EXAMPLE)
    listed = {name for name in active.keys() | commented if name.startswith("TADM_")}
    fields = settings_fields()
    assert sorted(listed - fields) == [], "in tadm.env.example but not in service.config.Settings"
    assert sorted(fields - listed) == [], "in service.config.Settings but not in tadm.env.example"
    assert {name for name in active if not name.startswith("TADM_")} == NON_TADM


def test_example_values_load_as_the_documented_defaults(monkeypatch):
    from service.config import Settings

    for name in settings_fields() | NON_TADM:
        monkeypatch.delenv(name, raising=False)
    from_file = Settings(_env_file=ENV_EXAMPLE)
    assert from_file.model_dump() == Settings().model_dump()


def test_example_file_is_generated_from_the_current_settings():
    expected = load_generator().render()
    assert ENV_EXAMPLE.read_text() == expected, (
        "deploy/tadm.env.example is out of date: python deploy/env_example.py > deploy/tadm.env.example"
    )


@pytest.mark.parametrize("env_file", [K8S / "base" / "tadm.env"], ids=lambda p: str(p.relative_to(DEPLOY)))
def test_kubernetes_env_file_sets_only_settings(env_file):
    active, _ = parse_env_file(env_file)
    assert active and set(active) <= settings_fields()
