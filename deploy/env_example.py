"""Write ``deploy/tadm.env.example`` from the service's settings class, so the two never drift apart.

    python deploy/env_example.py > deploy/tadm.env.example

Every field of ``service.config.Settings`` becomes ``TADM_<NAME>=<default>`` under its description; a field whose
default is unset (None) is written commented out, since an empty value is not "unset". The few non-TADM
variables the deployment reads (S3 credentials) follow. ``tests/deploy`` fails when the file is out of date.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

HEADER = """\
# tadm settings: every TADM_* environment variable the API and the workers read, with its default.
# Generated from service/config.py by `python deploy/env_example.py > deploy/tadm.env.example`; do not edit by
# hand. To change a value for docker compose, copy a line into deploy/tadm.env (read after this file); for
# Kubernetes, into deploy/k8s/base/tadm.env. Values set in the compose file's `environment:` win over both.
"""

# Variables outside the TADM_ prefix that the deployment passes through, with the example values the compose
# file's SeaweedFS profile uses. Change both before exposing the S3 port beyond localhost.
EXTRA = {
    "AWS_ACCESS_KEY_ID": ("S3 access key (boto3 reads it; the compose `s3` profile configures SeaweedFS with it).",
                          "tadm-dev-access-key"),
    "AWS_SECRET_ACCESS_KEY": ("S3 secret key (same).", "tadm-dev-secret-key-change-me"),
}


def format_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return value.as_posix()
    return str(value)


def render() -> str:
    from service.config import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    lines = [HEADER]
    for name, field in Settings.model_fields.items():
        description = field.description or ""
        lines.extend(textwrap.wrap(description, 112, initial_indent="# ", subsequent_indent="# "))
        variable = f"{prefix}{name}".upper()
        if field.default is None:
            lines.append(f"# {variable}=")
        else:
            lines.append(f"{variable}={format_value(field.default)}")
        lines.append("")
    lines.append("# -- Not TADM settings, read by libraries --")
    for variable, (description, value) in EXTRA.items():
        lines.append(f"# {description}")
        lines.append(f"{variable}={value}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
