"""`pybroker serve` tunes glibc malloc so freed megabyte buffers (request frames, fetch reads) are
reused instead of being returned to the kernel and faulted in again (pybroker.cli.tune_malloc).
Measured as minor page faults of a child process that allocates and frees 16 x 1 MiB, 20 times:
without the tuning glibc trims the freed top of its heap every round and the pages fault in anew.
It also raises the cyclic GC's thresholds (pybroker.cli.tune_gc): counted as GC passes of a child
process that builds and frees request-sized batches of containers.
"""
import os
import subprocess
import sys

import pytest

from pybroker.cli import _glibc

CHURN = r"""
import resource, sys
from pybroker.cli import tune_malloc
applied = tune_malloc() if sys.argv[1] == "tuned" else False
def churn():
    bufs = [bytearray(1 << 20) for _ in range(16)]
    del bufs
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    churn()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode, **env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")}
    out = subprocess.run([sys.executable, "-c", CHURN, mode], env={**clean, **env}, check=True,
                         stdout=subprocess.PIPE, text=True).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not _glibc(), reason="glibc malloc only")
def test_tuned_malloc_reuses_freed_megabytes():
    applied, tuned = faults("tuned")
    _, default = faults("default")
    pages = 20 * 16 * (1 << 20) // 4096
    assert applied
    assert default > pages // 2, "the untuned baseline should re-fault the freed pages"
    assert tuned < pages // 20


@pytest.mark.skipif(not _glibc(), reason="glibc malloc only")
def test_user_malloc_settings_are_left_alone():
    applied, _ = faults("tuned", MALLOC_TRIM_THRESHOLD_="1048576")
    assert not applied


# -- the cyclic GC --------------------------------------------------------------------------------

GC_CHURN = r"""
import gc, sys
from pybroker.cli import tune_gc
if sys.argv[1] == "tuned":
    tune_gc()
passes = [0]
gc.callbacks.append(lambda phase, info: phase == "start" and passes.__setitem__(0, passes[0] + 1))
for _ in range(500):     # a 256-partition request's worth of short-lived containers, freed
    objs = [{"partition": i, "records": [i]} for i in range(1000)]   # by reference counting
    del objs
print(passes[0])
"""


def gc_passes(mode):
    out = subprocess.run([sys.executable, "-c", GC_CHURN, mode], check=True, stdout=subprocess.PIPE,
                         text=True)
    return int(out.stdout)


def test_tuned_gc_leaves_short_lived_requests_to_reference_counting():
    assert gc_passes("default") >= 500     # 2,000 containers alive per round, threshold 700
    assert gc_passes("tuned") == 0


def test_serve_tunes_the_gc_before_the_broker_runs(monkeypatch, tmp_path):
    import gc
    from pybroker import cli
    seen = []

    def fake_run(coro):
        seen.append(gc.get_threshold())
        coro.close()
    saved = gc.get_threshold()
    monkeypatch.setattr(cli, "run", fake_run)
    monkeypatch.setattr(cli, "tune_malloc", lambda: False)
    try:
        assert cli.main(["serve", "--override", f"log.dir={tmp_path}"]) == 0
    finally:
        gc.set_threshold(*saved)
    assert seen == [cli.GC_THRESHOLDS]
