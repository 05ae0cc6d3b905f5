"""Command line:

    pybroker serve [CONFIG_FILE] [--override KEY=VALUE ...]     like kafka-server-start
    pybroker dump-log --files F[,F...] [--deep-iteration] [--print-data-log]
                      [--verify-index-only]                     like kafka-dump-log
    pybroker verify-log DIR [DIR ...]                           check a data directory
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys

from pybroker.config import BrokerConfig, ConfigError


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_malloc(trim_threshold=64 << 20, mmap_threshold=32 << 20) -> bool:
    """Keep freed request and response buffers in glibc's heap for reuse. By default glibc
    returns a freed top of heap above 2x its (dynamic) mmap threshold to the kernel, so the next
    megabytes of frames and fetch reads fault in fresh zeroed pages again (a fetch across 16
    partitions reads many 1 MiB regions at once). Fixed thresholds stop that churn; memory still
    goes back once more than `trim_threshold` is free at the top. Only for glibc, and not when
    the user tuned malloc through the environment. True when applied."""
    if not _glibc() or any(
            os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")) or \
            "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    import ctypes
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


# Python's cyclic GC in the broker process: a gen-0 pass once 100,000 more container objects are
# alive than at the last one (default 700). Requests and responses are freed by reference
# counting, so in steady state that count hardly grows and the passes (each walking the young
# objects, every 10th the older ones, every 100th the whole heap of logs, indexes and sessions)
# mostly find nothing. A 256-partition latency run spent 1.5-1.8 s of 12 s CPU in ~7,000 passes,
# and the full ones showed up as p99 stalls. Cycles are still collected, later.
GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc(thresholds=GC_THRESHOLDS) -> None:
    """Set the broker process's GC thresholds (see GC_THRESHOLDS); `pybroker serve` only, never
    the in-process test broker, whose process is the user's."""
    gc.set_threshold(*thresholds)


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        return False


def _serve(args) -> int:
    try:
        config = BrokerConfig.load(args.config, args.override or ())
    except ConfigError as exc:
        print(f"pybroker: configuration error: {exc}", file=sys.stderr)
        return 2
    tune_malloc()
    tune_gc()
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    for key in config.unknown:
        logging.getLogger("pybroker").warning("unknown configuration %s ignored", key)
    from pybroker.broker import Broker, BrokerStartError
    from pybroker.network.server import ListenerError

    async def main():
        broker = Broker(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await broker.start()
        print(f"pybroker {broker.version} started: node {config.node_id}, "
              f"listening on {', '.join(broker.endpoints())}, data in {', '.join(config.log_dirs)}",
              flush=True)
        await stop.wait()
        logging.getLogger("pybroker").info("shutting down")
        await broker.stop()

    try:
        run(main())
    except (ListenerError, BrokerStartError) as exc:
        print(f"pybroker: {exc}", file=sys.stderr)
        return 1
    return 0


def run(coro):
    """Run a coroutine on uvloop when it is installed, else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _dump_log(args) -> int:
    from pybroker.log.tools import dump_files
    paths = [p for item in args.files for p in item.split(",") if p]
    failures = dump_files(paths, sys.stdout, deep=args.deep_iteration, print_data=args.print_data_log,
                          verify_index_only=args.verify_index_only, max_bytes=args.max_bytes)
    return 1 if failures else 0


def _verify_log(args) -> int:
    from pybroker.log.tools import verify_paths
    report = verify_paths(args.dirs)
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"error: {problem}")
    print(f"{report.partitions} partitions, {report.segments} segments, {report.batches} batches, "
          f"{report.bytes} bytes checked: {'OK' if report.ok else f'{len(report.problems)} problems'}")
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pybroker", description="A Kafka-compatible broker")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start a broker (embedded defaults: localhost:9092)")
    serve.add_argument("config", nargs="?", help="server.properties file (Kafka key names)")
    serve.add_argument("--override", action="append", metavar="KEY=VALUE",
                       help="override a config value (repeatable)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=_serve)
    dump = sub.add_parser("dump-log", help="print segment files (.log, .index, .timeindex, "
                                           ".snapshot, checkpoints), like kafka-dump-log")
    dump.add_argument("--files", action="append", required=True, metavar="FILE[,FILE...]",
                      help="files to dump (comma-separated, repeatable)")
    dump.add_argument("--deep-iteration", action="store_true", help="print every record")
    dump.add_argument("--print-data-log", action="store_true",
                      help="print record keys and values (implies --deep-iteration)")
    dump.add_argument("--verify-index-only", action="store_true",
                      help="only report index entries that do not match the log")
    dump.add_argument("--max-bytes", type=int, default=None, help="stop reading a .log after this")
    dump.set_defaults(func=_dump_log)
    verify = sub.add_parser("verify-log", help="check CRCs, offsets and indexes of log dirs or "
                                               "partition dirs (read-only)")
    verify.add_argument("dirs", nargs="+", help="log dirs (log.dirs) or partition dirs")
    verify.set_defaults(func=_verify_log)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:                   # `pybroker dump-log ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
