"""Print the README's configuration table from the service's settings class, so the two never drift apart.

    python scripts/settings_table.py                  # the Markdown table, on stdout
    python scripts/settings_table.py --write README.md   # replace the block between the settings markers

Every field of ``service.config.Settings`` becomes a row: its environment variable (``TADM_<NAME>``), its default
and its description. ``tests/test_docs.py`` fails when the README's block differs from this output, so a setting
added without a description in the README fails the test suite.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"
UNITS = ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB"))


def _cell(text: str) -> str:
    """One table cell: no line breaks, and no `|` that would end the cell."""
    return " ".join(text.split()).replace("|", "\\|")


def format_default(name: str, value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, Path):
        return f"`{value.as_posix()}`"
    if value == "":
        return "empty"
    shown = f"`{value}`"
    if name.endswith("_bytes") and isinstance(value, int):
        for size, unit in UNITS:
            if value >= size and value % size == 0:
                return f"{shown} ({value // size} {unit})"
    return shown


def render() -> str:
    """The Markdown table of every setting, in the order ``Settings`` declares them."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from service.config import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    rows = ["| variable | default | what it sets |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        variable = f"{prefix}{name}".upper()
        rows.append(f"| `{variable}` | {_cell(format_default(name, field.default))} | "
                    f"{_cell(field.description or '')} |")
    return "\n".join(rows) + "\n"


def replace_block(text: str, table: str) -> str:
    """``text`` with the lines between the markers replaced by ``table``."""
    pattern = re.compile(re.escape(BEGIN) + r"\n.*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"no {BEGIN} ... {END} block to replace")
    return pattern.sub(lambda _: f"{BEGIN}\n{table}{END}", text, count=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, default=None, metavar="FILE",
                        help="replace the block between the settings markers in FILE instead of printing")
    args = parser.parse_args(argv)
    table = render()
    if args.write is None:
        sys.stdout.write(table)
    else:
        args.write.write_text(replace_block(args.write.read_text(), table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
