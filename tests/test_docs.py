"""The documents say what the code and the shipped weights are.

* The README's configuration table is the output of ``scripts/settings_table.py``: a setting added to
  ``service/config.py`` without regenerating it fails here.
* The model cards' figures (their ``model-index`` front matter) are the latest Kodak-24 evaluation recorded in
  the shipped ``training.json``, for the model id the card names.
* The README and the cards stay short enough to read; every relative link in the documents resolves, anchors
  included.
* The documents describe the product, not how it was built: no talk of work sessions, tracker numbers, borrowed
  machines or paths outside the repository.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from model.quality import is_model_method

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CARDS = {scale: REPO / "model" / "weights" / f"nano-{scale}x" / "README.md" for scale in (16, 32)}
DOCS = sorted({README, REPO / "THIRD_PARTY_NOTICES.md", *CARDS.values(), *(REPO / "docs").glob("**/*.md")})

MAX_README_LINES = 300
MAX_CARD_LINES = 160


def _settings_table():
    spec = importlib.util.spec_from_file_location("settings_table", REPO / "scripts" / "settings_table.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_readme_settings_table_is_generated_from_the_settings_class():
    table = _settings_table()
    text = README.read_text()
    match = re.search(re.escape(table.BEGIN) + r"\n(.*?)" + re.escape(table.END), text, re.S)
    assert match, f"README.md has no {table.BEGIN} ... {table.END} block"
    assert match.group(1) == table.render(), (
        "README.md's configuration table is out of date: run `python scripts/settings_table.py --write README.md`")


def test_settings_table_has_a_row_and_a_description_for_every_setting():
    from service.config import Settings

    rendered = _settings_table().render()
    for name, field in Settings.model_fields.items():
        assert f"| `TADM_{name.upper()}` |" in rendered
        assert field.description, f"Settings.{name} has no description for the README"


def test_readme_and_model_cards_stay_short():
    assert len(README.read_text().splitlines()) <= MAX_README_LINES
    for card in CARDS.values():
        assert len(card.read_text().splitlines()) <= MAX_CARD_LINES, card


def _front_matter(card: Path) -> dict:
    text = card.read_text()
    assert text.startswith("---\n"), f"{card} has no YAML front matter"
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.mark.parametrize("scale", sorted(CARDS))
def test_model_card_figures_are_the_latest_recorded_evaluation(scale: int):
    card = CARDS[scale]
    history = json.loads((card.parent / "training.json").read_text())
    latest = history["evaluations"][-1]
    assert latest["set"] == "kodak-24" and latest["scale"] == scale
    assert f"`{latest['model_id']}`" in card.read_text(), f"{card} should name model id {latest['model_id']}"

    model = next(v for k, v in latest["methods"].items() if is_model_method(k))
    bicubic = latest["methods"]["bicubic"]
    expected = {
        "PSNR-Y (dB)": model["psnr_y"],
        "MS-SSIM-Y": model["ms_ssim_y"],
        "PSNR-Y (dB), bicubic from a thumbnail of the same size": bicubic["psnr_y"],
        "MS-SSIM-Y, bicubic from a thumbnail of the same size": bicubic["ms_ssim_y"],
        "bits per pixel of the stored thumbnail": model["bpp"],
    }
    (entry,) = _front_matter(card)["model-index"]
    (result,) = [r for r in entry["results"] if r["dataset"]["type"] == "kodak"]
    metrics = {metric["name"]: metric["value"] for metric in result["metrics"]}
    assert metrics == pytest.approx(expected, abs=5e-5)


@pytest.mark.parametrize("scale", sorted(CARDS))
def test_model_card_stress_set_figures_are_the_committed_results(scale: int):
    results = json.loads((REPO / "docs" / "evaluation" / "stress-set" / f"results-{scale}x.json").read_text())
    model = next(m for m in results["means"] if m.startswith("tadm-"))
    expected = {
        "PSNR-Y (dB)": results["means"][model]["psnr_y"],
        "PSNR-Y (dB), bicubic from a thumbnail of the same size": results["means"]["bicubic"]["psnr_y"],
        "worst photo, PSNR-Y minus bicubic's (dB)": results["model_vs_bicubic"]["worst"]["delta_psnr_y"],
    }
    (entry,) = _front_matter(CARDS[scale])["model-index"]
    (result,) = [r for r in entry["results"] if r["dataset"]["type"] == "tadm-stress-set"]
    assert results["images"] == 53
    assert {m["name"]: m["value"] for m in result["metrics"]} == pytest.approx(expected, abs=5e-5)


LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[`*_]|\[|\]\([^)]*\)", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    in_code = False
    anchors = set()
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            anchors.add(_anchor(line.lstrip("#")))
    return anchors


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc: Path):
    broken = []
    for match in LINK.finditer(doc.read_text()):
        target = match.group(1) or match.group(2)
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path_part, _, anchor = target.partition("#")
        path = (doc.parent / path_part).resolve() if path_part else doc
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{doc.relative_to(REPO)} links to what does not exist: {broken}"


PROCESS_TALK = re.compile("|".join(f"(?:{p})" for p in (
    r"\b(this|previous|next|last|each|every|later|earlier|one|the)\s+(working\s+|training\s+)?session\b",
    r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|\w+teenth|twentieth|\d+(st|nd|rd|th))"
    r"\s+session",
    r"\bacross\s+sessions\b", r"\bissue\s+#?\d+\b", r"\blent\b", r"\bdevice (call|machine|tool|run|budget)",
    r"\.\./shared\b", r"\brelease\s+bar\b", r"[$]OUT\b",
)), re.I)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_documents_describe_the_product_not_how_it_was_built(doc: Path):
    hits = [line.strip()[:100] for line in doc.read_text().splitlines() if PROCESS_TALK.search(line)]
    assert not hits, f"{doc.relative_to(REPO)}: {hits}"
