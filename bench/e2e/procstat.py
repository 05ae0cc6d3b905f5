"""CPU time and resident memory of a process and its descendants, read from /proc.

    # /proc/<pid>/stat: "pid (comm) state ppid ..." -- comm may hold spaces and parentheses, so
    # fields are counted after the last ')': field 4 ppid, 14 utime, 15 stime, 16 cutime,
    # 17 cstime (clock ticks); numbering as in proc(5).
    # /proc/<pid>/status: "VmRSS:   123456 kB", "VmHWM:   123456 kB"

    with TreeSampler(pid) as s:
        run_workload()
    s.cpu_seconds, s.peak_rss_bytes
"""
from __future__ import annotations

import os
import threading
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after ``comm``, or None when the process is gone.

    Index 0 is field 3 (state) of proc(5), so field N is at index N - 3.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rfind(")") + 2:].split()


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[4 - 3]) if fields else None


def descendants(root: int) -> list[int]:
    """root and every live process below it (one pass over /proc)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            ppid = parent_of(int(name))
            if ppid is not None:
                children.setdefault(ppid, []).append(int(name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def cpu_seconds(pid: int, *, include_reaped: bool = True) -> float:
    """utime + stime of one process (all its threads); with include_reaped, plus the times of
    children it has waited for (cutime + cstime). 0.0 when the process is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[14 - 3]) + int(fields[15 - 3])
    if include_reaped:
        ticks += int(fields[16 - 3]) + int(fields[17 - 3])
    return ticks / CLOCK_TICKS


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of root (with its reaped children) and of its live descendants."""
    tree = descendants(root)
    return cpu_seconds(root) + sum(cpu_seconds(p) for p in tree[1:])


def status_kib(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/<pid>/status (e.g. VmRSS, VmHWM) in KiB; 0 when absent or gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def tree_rss_bytes(tree: list[int]) -> int:
    return sum(status_kib(p, "VmRSS") for p in tree) * 1024


class TreeSampler:
    """Samples a process tree while a workload runs: CPU seconds used between start and stop
    (tree-wide), and the highest summed VmRSS seen (sampled every ``interval`` seconds; the
    tree itself is re-listed every ``relist`` seconds)."""

    def __init__(self, root: int, interval: float = 0.05, relist: float = 1.0):
        self.root = root
        self.interval = interval
        self.relist = relist
        self.cpu_seconds = 0.0
        self.peak_rss_bytes = 0
        self.samples = 0
        self.wall_seconds = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu0 = 0.0
        self._t0 = 0.0

    def start(self) -> "TreeSampler":
        self._cpu0 = tree_cpu_seconds(self.root)
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> "TreeSampler":
        self._stop.set()
        self._thread.join()
        self.wall_seconds = time.monotonic() - self._t0
        self.cpu_seconds = max(0.0, tree_cpu_seconds(self.root) - self._cpu0)
        return self

    def _run(self) -> None:
        tree, listed = descendants(self.root), time.monotonic()
        while True:
            self.peak_rss_bytes = max(self.peak_rss_bytes, tree_rss_bytes(tree))
            self.samples += 1
            if self._stop.wait(self.interval):
                return
            if time.monotonic() - listed >= self.relist:
                tree, listed = descendants(self.root), time.monotonic()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def as_dict(self) -> dict:
        return {"cpu_seconds": round(self.cpu_seconds, 3), "peak_rss_bytes": self.peak_rss_bytes,
                "wall_seconds": round(self.wall_seconds, 3), "rss_samples": self.samples}
