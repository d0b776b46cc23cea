"""Join per-photo evaluations of parts of one photo set (``tadm eval`` run side by side on folders of links, or on
several machines) into one ``results-<scale>x.json`` and ``photos-<scale>x.md``, as one run over the whole set
would have written them.

    python scripts/join_eval_results.py part-1/results-16x.json part-2/results-16x.json --title "images" -o OUT

``--title`` names the set as ``tadm eval`` does (its folder's name); the photo count and scale are added.
``--base`` updates an earlier evaluation of the whole set instead: the photos of the parts replace theirs, the
others are kept (gaining the ``-bounded`` method as the model's own result where their thumbnail is within the
bound, ``model.evaluation.per_photo.updated``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere: the model package is the repository's

from model.evaluation import per_photo  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path, nargs="+", help="results-<scale>x.json of each part")
    p.add_argument("--title", required=True, help="the set's name, e.g. its folder's")
    p.add_argument("--base", type=Path, default=None,
                   help="an earlier results-<scale>x.json of the whole set, updated with the parts' photos")
    p.add_argument("-o", "--output", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        docs = [json.loads(path.read_text()) for path in args.results]
        if args.base is not None:
            base = json.loads(args.base.read_text())
            rows = per_photo.updated(base, docs)
        else:
            rows = per_photo.joined(docs)
    except (OSError, ValueError, KeyError) as exc:
        print(f"join_eval_results: {exc}", file=sys.stderr)
        return 2
    scale = rows[0].scale if rows else docs[0]["scale"]
    images = len({r.image for r in rows})
    args.output.mkdir(parents=True, exist_ok=True)
    per_photo.write(rows, f"{args.title}, {images} images, {scale}x", scale, args.output)
    print(f"{images} photos at {scale}x -> {args.output}/results-{scale}x.json, photos-{scale}x.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
