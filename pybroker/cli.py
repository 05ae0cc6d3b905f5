"""Command line: `pybroker serve [CONFIG_FILE] [--override KEY=VALUE ...]` (like kafka-server-start)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from pybroker.config import BrokerConfig, ConfigError


def _serve(args) -> int:
    try:
        config = BrokerConfig.load(args.config, args.override or ())
    except ConfigError as exc:
        print(f"pybroker: configuration error: {exc}", file=sys.stderr)
        return 2
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pybroker", description="A Kafka-compatible broker")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start a broker (embedded defaults: localhost:9092)")
    serve.add_argument("config", nargs="?", help="server.properties file (Kafka key names)")
    serve.add_argument("--override", action="append", metavar="KEY=VALUE",
                       help="override a config value (repeatable)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=_serve)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
