#!/usr/bin/env python3
"""A/B of shutdown time right after topic deletions, as the e2e matrix ends: two (or more)
pybroker trees, one run.

    python bench/shutdown_ab.py --tree before=/tmp/pb-before --tree after=. [--reps 3]
        [--topics 16,256] [--messages 1000000] [--size 1024]

Per rep and tree (alternating the order), a broker starts from that tree on an empty data dir
(bench/broker_ab.py's Server); for each entry of --topics a topic of that many partitions is
created, filled by the e2e matrix's librdkafka driver (broker_ab.rdkafka) and deleted; then SIGTERM, and the clock
runs until the process has exited. Medians over the reps.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "e2e"))
from broker_ab import Server, rdkafka  # noqa: E402
import rdkafka_driver  # noqa: E402


def one_run(tree: str, args) -> float:
    server = Server(os.path.abspath(tree), [])
    bootstrap = f"127.0.0.1:{server.port}"
    try:
        for partitions in args.topics:
            topic = f"shutdown-{partitions}"
            rdkafka_driver.create_topic(bootstrap, topic, partitions)
            rdkafka("produce", server.port, topic, args.size, args.messages, server.process.pid)
            rdkafka_driver.delete_topic(bootstrap, topic)
        rdkafka_driver.forget_admin(bootstrap)
        t0 = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(60)
        seconds = time.monotonic() - t0
        if code != 0:
            raise SystemExit(f"broker from {tree} exited with {code}")
        return seconds
    finally:
        server.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--topics", default="16,256", help="partitions of each topic written and deleted")
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=1024)
    args = ap.parse_args(argv)
    args.topics = [int(p) for p in args.topics.split(",")]
    trees = [t.split("=", 1) for t in args.tree]
    results = {name: [] for name, _ in trees}
    for rep in range(args.reps):
        for name, path in (trees if rep % 2 == 0 else trees[::-1]):
            seconds = one_run(path, args)
            results[name].append(seconds)
            print(rep, name, f"shutdown {seconds:.3f} s", flush=True)
    with open("/proc/loadavg") as f:
        print("load average at the end:", f.read().strip())
    first = statistics.median(results[trees[0][0]])
    for name, values in results.items():
        med = statistics.median(values)
        print(f"{name:12} median shutdown {med:.3f} s ({med / first:.2f}x)")


if __name__ == "__main__":
    main()
