from __future__ import annotations

import math

from model.evaluation.evaluate import Row
from model.evaluation.report import markdown_table, summarise


def rows(thumbnail_psnrs: list[float]) -> list[Row]:
    return [Row(f"p{i}.png", "tadm-nano", 32, 1000, 64 * 64, {"psnr_y": 30.0 + i, "thumbnail_psnr": v})
            for i, v in enumerate(thumbnail_psnrs)]


def test_the_mean_thumbnail_psnr_leaves_out_plain_thumbnails_which_are_bicubics_own():
    means = summarise(rows([30.0, math.inf, 34.0]))["tadm-nano"]
    assert means["thumbnail_psnr"] == 32.0 and means["psnr_y"] == 31.0
    assert "inf" not in markdown_table(rows([30.0, math.inf, 34.0]), "photos")
    # all plain: every thumbnail is bicubic's, and the mean says so
    assert math.isinf(summarise(rows([math.inf, math.inf]))["tadm-nano"]["thumbnail_psnr"])
    # a method without thumbnails stays absent
    assert math.isnan(summarise(rows([math.nan, 30.0]))["tadm-nano"]["thumbnail_psnr"])
