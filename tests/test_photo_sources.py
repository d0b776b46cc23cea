"""The training photos and the stress set come from separate sources, as docs/training-data.md and
docs/evaluation/stress-set.md promise: no package holds photos of both, no file is in both, and every package the
training photos come from is named in the training-data document."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
SHA256 = re.compile(r"[0-9a-f]{64}")


def _stress_rows() -> list[list[str]]:
    """The stress set's table in fetch_stress_set.sh: name, package, path, SHA-256."""
    script = (SCRIPTS / "fetch_stress_set.sh").read_text(encoding="utf-8")
    table = script.split("PHOTOS=\"$(cat <<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    return [line.split("\t") for line in table.splitlines()]


def _ubuntu_training_rows() -> list[list[str]]:
    """scripts/training_photos_ubuntu.tsv: package, path, SHA-256."""
    text = (SCRIPTS / "training_photos_ubuntu.tsv").read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


def _debian_training_packages() -> set[str]:
    script = (SCRIPTS / "gather_training_photos.sh").read_text(encoding="utf-8")
    listed = re.search(r"^PACKAGES=\(([^)]*)\)", script, re.M)
    assert listed, "gather_training_photos.sh no longer lists its Debian packages as PACKAGES=(...)"
    return set(listed.group(1).split())


def test_the_tables_are_well_formed():
    stress, training = _stress_rows(), _ubuntu_training_rows()
    assert len(stress) == 53 and len(training) >= 100
    assert all(len(row) == 4 and SHA256.fullmatch(row[3]) for row in stress)
    assert all(len(row) == 3 and SHA256.fullmatch(row[2]) for row in training)
    # One PNG per row, named <package>__<file stem>: two rows must not share a name.
    names = [f"{package}__{Path(path).stem}" for package, path, _ in training]
    assert len(set(names)) == len(names)


def test_no_package_and_no_file_serves_both_training_and_evaluation():
    stress = _stress_rows()
    stress_packages = {row[1] for row in stress}
    training = _ubuntu_training_rows()
    training_packages = {row[0] for row in training} | _debian_training_packages()
    assert not stress_packages & training_packages
    assert not {row[3] for row in stress} & {row[2] for row in training}


def test_every_training_package_is_documented_with_its_photo_count():
    doc = (REPO / "docs" / "training-data.md").read_text(encoding="utf-8")
    counts: dict[str, int] = {}
    for package, _, _ in _ubuntu_training_rows():
        counts[package] = counts.get(package, 0) + 1
    rows = {cells[0]: cells[1:] for line in doc.splitlines() if line.startswith("| `")
            for cells in [[cell.strip() for cell in line.strip("|").split("|")]]}
    for package, count in counts.items():
        assert str(count) in rows.get(f"`{package}`", []), \
            f"docs/training-data.md has no table row for {package} with {count} photos"
    for package in _debian_training_packages():
        assert f"`{package}`" in doc, package
