"""Measurements timed in turns in one process, which a slow spell of a shared machine moves far
less than two measurements in separate processes: the variants of one runtime side by side, and
a streaming step next to its clip."""
from __future__ import annotations

import logging
import statistics

from .options import BenchOptions
from .report import STREAM_FRAME_OVER_CLIP
from .runtimes import measure

log = logging.getLogger(__name__)


def measure_variants_in_turns(jobs: list, opts: BenchOptions) -> None:
    """ACTION and TSM (and TSN) of each runtime, precision and thread count once more, their clip
    artifacts loaded side by side in one process and timed in turns (worker.measure_interleaved,
    ``runs x rounds`` clips each): ``over_tsm_in_turns`` on the ACTION row is the ratio of those
    medians - 1, which a slow spell of a shared machine moves far less than the ratio of two rows
    measured in separate processes. Each row of the group gets its ``latency_ms_median_in_turns``."""
    groups: dict[tuple, dict] = {}
    for job in jobs:
        row = job[0]
        if row["mode"] == "clip" and row.get("status") == "ok":
            key = (row["runtime"], row["precision"], row["threads"], row["segments"], row["size"])
            groups.setdefault(key, {})[row["variant"]] = job
    for (rt, prec, threads, segments, size), by_variant in groups.items():
        if not {"action", "tsm"} <= set(by_variant):
            continue
        src = by_variant["action"][1]
        items = {v: {"artifact": str(job[3]) if job[3] else None, "config": job[1].config} for v, job in by_variant.items()}
        res = measure(rt, artifact=None, config=src.config, shape=(1, segments, 3, size, size), threads=threads,
                      warmup=opts.warmup, runs=opts.runs * max(1, opts.rounds), interleave=items)
        if "interleaved_ms" not in res:
            by_variant["action"][0]["in_turns_error"] = res.get("error") or res.get("skipped") or "no result"
            log.warning("%s %s variants in turns: %s", rt, prec, by_variant["action"][0]["in_turns_error"])
            continue
        for v, times in res["interleaved_ms"].items():
            by_variant[v][0]["latency_ms_median_in_turns"] = statistics.median(times)
            by_variant[v][0]["runs_in_turns"] = len(times)
        action, tsm = (by_variant[v][0]["latency_ms_median_in_turns"] for v in ("action", "tsm"))
        by_variant["action"][0]["over_tsm_in_turns"] = action / tsm - 1.0
        log.info("%s %s %d thr, variants in turns: %s; ACTION over TSM %+.1f%%", rt, prec, threads,
                 ", ".join(f"{v} {job[0]['latency_ms_median_in_turns']:.2f} ms" for v, job in by_variant.items()),
                 100 * (action / tsm - 1.0))


_PAIR_KEY = ("variant", "runtime", "precision", "threads", "device", "segments", "size")


def _pair_key(row: dict) -> tuple:
    return tuple(row.get(k) for k in _PAIR_KEY)


def measure_pairs(jobs: list, opts: BenchOptions) -> None:
    """Each measured streaming step once more, side by side with its clip in one process and timed
    in turns (worker.measure_pair): ``frame_over_clip_paired`` is the median over the blocks of
    (mean of T steps) / (the clip next to them), which a slow spell of a shared machine moves far
    less than the ratio of two medians measured in separate processes."""
    clips = {_pair_key(row): artifact for row, _, _, artifact, _, _ in jobs
             if row["mode"] == "clip" and row.get("status") == "ok"}
    for row, src, rt, artifact, threads, _ in jobs:
        if row["mode"] != "frame" or row.get("status") != "ok" or _pair_key(row) not in clips:
            continue
        pair_clip = {"shape": [1, src.segments, 3, src.size, src.size]}
        if rt != "pytorch":  # pytorch runs the one checkpoint (or config) both ways
            pair_clip["artifact"] = str(clips[_pair_key(row)])
        res = measure(rt, artifact=artifact, config=src.config, shape=(1, 3, src.size, src.size), threads=threads,
                      warmup=opts.warmup, runs=opts.runs, streaming=src.streaming, pair_clip=pair_clip)
        if "pair_clip_ms" not in res:
            row["paired_error"] = res.get("error") or res.get("skipped") or "no result"
            log.warning("%s %s step and clip in turns: %s", src.variant, rt, row["paired_error"])
            continue
        ratios = [statistics.fmean(steps) / c for c, steps in zip(res["pair_clip_ms"], res["pair_step_ms"])]
        row.update(frame_over_clip_paired=statistics.median(ratios), paired_blocks=len(ratios),
                   paired_clip_ms_median=statistics.median(res["pair_clip_ms"]),
                   paired_step_ms_median=statistics.median(v for b in res["pair_step_ms"] for v in b))
        log.info("%s %s %d thr, step and clip in turns: %d blocks, step %.2f ms, clip %.2f ms, frame / clip %.3f",
                 src.variant, rt, threads, len(ratios), row["paired_step_ms_median"], row["paired_clip_ms_median"],
                 row["frame_over_clip_paired"])


def pair_streaming(rows: list[dict]) -> None:
    """On each frame row: the clip row's median, frame / clip, and whether the step is under
    STREAM_FRAME_OVER_CLIP of the clip: judged on ``frame_over_clip_paired`` where it was measured
    (step and clip timed in turns), else on the two rows' medians."""
    clips = {_pair_key(r): r for r in rows if r.get("mode", "clip") == "clip" and r.get("status") == "ok"}
    for r in rows:
        if r.get("mode") != "frame":
            continue
        clip = clips.get(_pair_key(r))
        ok = clip is not None and r.get("status") == "ok"
        ratio = r["latency_ms_median"] / clip["latency_ms_median"] if ok else None
        r["clip_latency_ms_median"] = clip["latency_ms_median"] if clip else None
        r["frame_over_clip"] = ratio
        # the same ratio of the fastest runs: steadier than the medians on a shared machine
        r["frame_over_clip_min"] = r["latency_ms_min"] / clip["latency_ms_min"] if ok else None
        judged = r.get("frame_over_clip_paired", ratio) if ok else None
        r["streaming_goal_met"] = None if judged is None else judged < STREAM_FRAME_OVER_CLIP

