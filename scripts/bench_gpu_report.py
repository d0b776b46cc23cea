"""The GPU benchmark's report: one log line per measurement, and the summary of a run (speed-ups over the
baseline and the receiver's three performance goals: a 3840x2160 image at 16x in under 1 s, the UNet at half the
GPU's peak or more, 3x the baseline or more). Imported by ``bench_gpu.py`` from beside it."""

from __future__ import annotations

GOAL_SECONDS_4K, GOAL_PEAK_FRACTION, GOAL_SPEEDUP = 1.0, 0.5, 3.0


def format_row(row: dict, peak_tflops: float) -> str:
    stages = " ".join(f"{k}={v * 1e3:.0f}" for k, v in row["stages_s"].items())
    fraction = f"{100 * row['unet_tflops'] / peak_tflops:.0f}%" if row["unet_tflops"] else "n/a"
    memory = f"{row['peak_memory_mib']:.0f} MiB" if row["peak_memory_mib"] is not None else "n/a"
    return (f"  {row['scale']}x {row['size'][0]}x{row['size'][1]} x{row['jobs']}: {row['seconds_median']:.3f} s, "
            f"{row['megapixels_per_s']:.2f} MP/s, UNet {row['unet_tflops'] or 0:.3g} TFLOP/s ({fraction}), "
            f"peak {memory}; ms: {stages}")


def summarize(results: list[dict], peak_tflops: float, goals: bool = True) -> dict:
    """Speed-ups over the baseline and the three performance goals (None where not measured, or in a dry run)."""
    single = [r for r in results if r["jobs"] == 1]
    baseline = {(r["scale"], tuple(r["size"])): r for r in single if r["config"] == "baseline"}
    best: dict[tuple[int, tuple[int, int]], dict] = {}
    for r in single:
        key = (r["scale"], tuple(r["size"]))
        if r["config"] != "baseline" and (key not in best or r["seconds_median"] < best[key]["seconds_median"]):
            best[key] = r
    rows = []
    for key, r in sorted(best.items()):
        base = baseline.get(key)
        rows.append({"scale": key[0], "size": list(key[1]), "best_config": r["config"],
                     "seconds": r["seconds_median"], "baseline_seconds": base["seconds_median"] if base else None,
                     "speedup": base["seconds_median"] / r["seconds_median"] if base else None})
    four_k = best.get((16, (3840, 2160)))
    fractions = [r["unet_tflops"] / peak_tflops for r in best.values() if r["unet_tflops"]]
    speedups = [row["speedup"] for row in rows if row["speedup"]]
    if not goals:
        return {"per_size": rows, "goals": None}
    return {
        "per_size": rows,
        "goals": {
            "3840x2160_16x_under_1s": four_k["seconds_median"] < GOAL_SECONDS_4K if four_k else None,
            "3840x2160_16x_seconds": four_k["seconds_median"] if four_k else None,
            "unet_at_least_half_of_peak": min(fractions) >= GOAL_PEAK_FRACTION if fractions else None,
            "unet_fraction_of_peak_min": min(fractions) if fractions else None,
            "at_least_3x_baseline": min(speedups) >= GOAL_SPEEDUP if speedups else None,
            "speedup_min": min(speedups) if speedups else None,
        },
    }
