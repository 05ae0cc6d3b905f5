"""Repeated rounds: every target runs the whole profile R times, the order of the targets reversed
every other round, and the report takes, per target, cell and workload, the median run.

On this machine one run of a write-heavy workload can move by 2-3x between runs of the same
broker (the VM returns freed memory to its host, free page reporting, and a later first touch of
it costs about three times a warm one; which run meets cold memory is luck). Alternating the order
cancels the drift between the first and the second target; the median drops the outliers.

The median run is chosen by the workload's headline figure (KEYS) and kept whole, so its CPU
seconds, peak RSS and latency percentiles stay those of one real run.
"""
from __future__ import annotations

import statistics

from e2e.report import CLEAN_EXIT

# workload -> the figure that picks the median run (path into its result), higher is better?
KEYS = {
    "java_produce": (("steady", "msgs_per_s"), True),
    "java_consume": (("fetch_msgs_per_s",), True),
    "rd_produce": (("msgs_per_s",), True),
    "rd_consume": (("msgs_per_s",), True),
    "latency": (("p99_ms",), False),
}
# per-target figures outside the cells: medians
SCALARS = ("startup_seconds", "idle_rss_bytes", "peak_rss_hwm_bytes", "total_cpu_seconds",
           "shutdown_seconds", "format_seconds")


def order(names: list[str], round_index: int) -> list[str]:
    return list(names) if round_index % 2 == 0 else list(reversed(names))


def _dig(result, path):
    for key in path:
        if not isinstance(result, dict) or result.get(key) is None:
            return None
        result = result[key]
    return result


def median_run(runs: list[dict | None], workload: str) -> dict | None:
    """The run whose headline figure is the median of the good runs (of an even count, the worse
    of the two middle ones); the first run when none is good."""
    path, higher_is_better = KEYS[workload]
    good = [(v, i) for i, r in enumerate(runs)
            if r and r.get("ok") and (v := _dig(r, path)) is not None]
    if not good:
        return next((r for r in runs if r is not None), None)
    good.sort()
    value, index = good[(len(good) - 1) // 2 if higher_is_better else len(good) // 2]
    return {**runs[index], "rounds": {"values": [v for v, _ in good], "median": value,
                                      "of": len(runs)}}


def merge_target(per_round: list[dict]) -> dict:
    """One target's results from several rounds -> one result of the same shape."""
    if len(per_round) == 1:
        return per_round[0]
    merged = dict(per_round[-1])
    for key in SCALARS:
        values = [r[key] for r in per_round if isinstance(r.get(key), (int, float))]
        merged[key] = statistics.median(values) if values else None
    errors = [r["error"] for r in per_round if r.get("error")]
    if errors:
        merged["error"] = "\n".join(f"round {i + 1}: {e}" for i, e in enumerate(errors))
    cells = {}
    for cell_id in {c for r in per_round for c in r.get("cells", {})}:
        runs = [r.get("cells", {}).get(cell_id) for r in per_round]
        ok = [c for c in runs if c and not c.get("error")]
        if not ok:
            cells[cell_id] = next(c for c in runs if c is not None)
            continue
        cell = {"messages": ok[0].get("messages")}
        for workload in KEYS:
            chosen = median_run([c.get(workload) for c in ok], workload)
            if chosen is not None:
                cell[workload] = chosen
        cells[cell_id] = cell
    merged["cells"] = cells
    # a bad stop in any round must show: the first exit code that is not a clean one
    codes = [r.get("exit_code") for r in per_round]
    clean = CLEAN_EXIT.get(merged.get("name"), (0,))
    merged["exit_code"] = next((c for c in codes if c is not None and c not in clean), codes[-1])
    merged["exit_codes"] = codes
    return merged


def merge(rounds: list[dict]) -> dict:
    """[{target: result}] per round -> {target: merged result}."""
    names = [n for r in rounds for n in r]
    return {name: merge_target([r[name] for r in rounds if name in r])
            for name in dict.fromkeys(names)}
