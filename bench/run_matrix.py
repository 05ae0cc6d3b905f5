#!/usr/bin/env python3
"""Side-by-side end-to-end benchmark: pybroker against Apache Kafka on this machine, in one run.

    python bench/run_matrix.py --profile quick            # a few cells, a few minutes
    python bench/run_matrix.py --profile full             # the whole matrix (long)
    python bench/run_matrix.py --targets kafka            # one broker only
    python bench/run_matrix.py --targets kafka,pybroker,tansu   # Tansu as a second reference
    python bench/run_matrix.py --profile quick --repeat 3 # 3 rounds, order alternating, medians
    python bench/run_matrix.py --report-only              # re-render from the last JSON

Writes bench/RESULTS.md and bench/plots/*.png (full profile; the quick one writes
bench/RESULTS-quick.md and bench/plots/quick/) and the raw figures to bench/e2e/last-<profile>.json.
Needs java and the Kafka jars (ci/fetch_kafka is run when they are missing), confluent-kafka and
matplotlib (the `bench` extra). See bench/e2e/matrix.py for what each cell runs.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import shlex
import sys
import time

BENCH = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import kafka_ref  # noqa: E402
from e2e import matrix, report, rounds  # noqa: E402
from e2e.targets import KafkaTarget, PybrokerTarget, TansuTarget  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", choices=sorted(matrix.PROFILES), default="quick")
    p.add_argument("--targets", default="kafka,pybroker", help="comma-separated, run in this order")
    p.add_argument("--e2e-rate", type=float, default=None,
                   help="fixed latency-run rate in msgs/s for both brokers (default: half of Kafka's "
                        "librdkafka produce rate in the same cell)")
    p.add_argument("--e2e-rate-cap", type=float, default=150_000,
                   help="upper bound on the derived rate (one Python producer paced 130k 1 KiB msgs/s "
                        "here with p99 21 ms against pybroker)")
    p.add_argument("--e2e-fallback-rate", type=float, default=5_000,
                   help="rate used when Kafka's figure for the cell is missing")
    p.add_argument("--pybroker-override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra `pybroker serve --override` (repeatable)")
    p.add_argument("--kafka-override", action="append", default=[], metavar="KEY=VALUE",
                   help="server.properties entry for Kafka over its shipped settings (repeatable)")
    p.add_argument("--repeat", type=int, default=1, metavar="R",
                   help="run the profile R times, reversing the order of the targets every other "
                        "round; the report takes each workload's median run (bench/e2e/rounds.py)")
    p.add_argument("--cells", default=None, help="comma-separated cell ids: run only these of the profile")
    p.add_argument("--workloads", default=None,
                   help=f"comma-separated, run only these of {','.join(matrix.WORKLOADS)} (each "
                        "consume reads what its produce wrote; latency needs --e2e-rate without "
                        "rd_produce, or gets the fallback rate)")
    p.add_argument("--max-messages", type=int, default=None, help="lower the profile's per-run message cap")
    p.add_argument("--results", type=pathlib.Path, default=None,
                   help="default bench/RESULTS.md for the full profile, bench/RESULTS-quick.md for quick")
    p.add_argument("--plots", type=pathlib.Path, default=None,
                   help="default bench/plots (full) or bench/plots/quick")
    p.add_argument("--json", type=pathlib.Path, default=None, help="default bench/e2e/last-<profile>.json")
    p.add_argument("--report-only", action="store_true", help="re-render RESULTS.md and plots from --json")
    args = p.parse_args(argv)
    full = args.profile == "full"
    args.results = args.results or BENCH / ("RESULTS.md" if full else f"RESULTS-{args.profile}.md")
    args.plots = args.plots or (BENCH / "plots" if full else BENCH / "plots" / args.profile)
    return args


class RatePolicy:
    """The latency-run rate: fixed, or half of Kafka's librdkafka produce rate in the same cell
    (capped), with a fallback when Kafka's figure is missing."""

    def __init__(self, args, results: dict):
        self.args, self.results = args, results
        self.fixed: dict = {}  # cell id -> (rate, basis): the first rate derived holds for all rounds

    def describe(self) -> str:
        a = self.args
        if a.e2e_rate:
            return f"Fixed at {a.e2e_rate:,.0f} msgs/s for both brokers (`--e2e-rate`)."
        return (f"Half of Kafka's librdkafka produce rate (msgs/s) in the same cell, capped at "
                f"{a.e2e_rate_cap:,.0f} msgs/s (what one Python producer paces reliably here); "
                f"{a.e2e_fallback_rate:,.0f} msgs/s when Kafka's figure is missing. pybroker gets "
                f"the same rate as Kafka. The achieved rate is reported next to each result.")

    def __call__(self, target_name: str):
        def rate_for(cell, current: dict):
            a = self.args
            if a.e2e_rate:
                return a.e2e_rate, "fixed"
            if cell.id in self.fixed:
                return self.fixed[cell.id]
            rate = derive(cell, current)
            if not rate[1].startswith("fallback"):
                self.fixed[cell.id] = rate
            return rate

        def derive(cell, current: dict):
            a = self.args
            kafka_cell = current if target_name == "kafka" else \
                self.results.get("kafka", {}).get("cells", {}).get(cell.id, {})
            produced = (kafka_cell or {}).get("rd_produce") or {}
            if not produced.get("ok"):
                return a.e2e_fallback_rate, "fallback: no Kafka produce figure"
            half = produced["msgs_per_s"] / 2
            if half > a.e2e_rate_cap:
                return a.e2e_rate_cap, f"capped; half of Kafka's max is {half:,.0f}/s"
            return half, "half of Kafka's librdkafka max"
        return rate_for


def select(profile, args):
    """The profile, narrowed by --cells and --max-messages."""
    import dataclasses
    if args.cells:
        wanted = set(args.cells.split(","))
        unknown = wanted - {c.id for c in profile.cells}
        if unknown:
            raise SystemExit(f"unknown cells {sorted(unknown)}; {profile.name} has "
                             f"{[c.id for c in profile.cells]}")
        profile = dataclasses.replace(profile, cells=tuple(c for c in profile.cells if c.id in wanted))
    if args.workloads:
        wanted = args.workloads.split(",")
        unknown = set(wanted) - set(matrix.WORKLOADS)
        if unknown:
            raise SystemExit(f"unknown workloads {sorted(unknown)}; there are {list(matrix.WORKLOADS)}")
        profile = dataclasses.replace(profile, workloads=tuple(w for w in matrix.WORKLOADS if w in wanted))
    if args.max_messages:
        profile = dataclasses.replace(profile, max_messages=min(profile.max_messages, args.max_messages))
    return profile


def make_target(name: str, args, libs):
    if name == "kafka":
        return KafkaTarget(libs=libs, overrides=dict(kv.split("=", 1) for kv in args.kafka_override))
    if name == "pybroker":
        overrides = dict(kv.split("=", 1) for kv in args.pybroker_override)
        return PybrokerTarget(overrides=overrides)
    if name == "tansu":
        return TansuTarget()
    raise SystemExit(f"unknown target {name!r} (kafka, pybroker, tansu)")


def run(args) -> dict:
    profile = select(matrix.PROFILES[args.profile](), args)
    libs = kafka_ref.find_libs() or kafka_ref.fetch_libs()
    results: dict = {}  # the round running now: {target: result}
    policy = RatePolicy(args, results)
    started, t0 = datetime.datetime.now().astimezone(), time.monotonic()
    data = {"profile": profile.name, "started": started.isoformat(timespec="seconds"),
            "command": shlex.join(["python", "bench/run_matrix.py", *sys.argv[1:]]),
            "machine": report.machine_info(), "cells": [c.id for c in profile.cells],
            "settings": {"byte_budget": profile.byte_budget, "max_messages": profile.max_messages,
                         "time_limit": profile.time_limit, "latency_seconds": profile.latency_seconds,
                         "warmup_messages": profile.warmup_messages, "rate_policy": policy.describe(),
                         "messages": {c.id: profile.messages(c) for c in profile.cells}},
            "repeat": args.repeat}
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    per_round = []
    for r in range(args.repeat):
        results.clear()
        for name in rounds.order(names, r):
            if args.repeat > 1:
                matrix.log(f"round {r + 1} of {args.repeat}")
            target = make_target(name, args, libs)
            results[name] = matrix.run_target(target, profile, libs, policy(name))
        per_round.append(dict(results))
    data["targets"] = rounds.merge(per_round)
    if args.repeat > 1:
        data["rounds"] = per_round
    data["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    data["duration_seconds"] = time.monotonic() - t0
    data["loadavg_end"] = os.getloadavg()
    return data


def write_report(data: dict, args) -> None:
    plots = report.plot_all(data, args.plots)
    text = report.render(data)
    if plots:
        rel = [os.path.relpath(p, args.results.parent) for p in plots]
        text += "\n## Plots\n\n" + "\n".join(f"![{pathlib.Path(r).stem}]({r})" for r in rel) + "\n"
    args.results.write_text(text)
    print(f"wrote {args.results} and {len(plots)} plot(s) in {args.plots}", file=sys.stderr)


def main(argv=None) -> int:
    args = parse_args(argv)
    json_path = args.json or BENCH / "e2e" / f"last-{args.profile}.json"
    if args.report_only:
        data = json.loads(json_path.read_text())
    else:
        data = run(args)
        json_path.write_text(json.dumps(data, indent=1))
    write_report(data, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
