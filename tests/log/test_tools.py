"""`pybroker dump-log` and `pybroker verify-log` as commands: output of every file kind, a
corrupted batch, a wrong index entry, leftovers of an interrupted clean, bad arguments."""
import os
import subprocess
import sys
import time

from pybroker.codec import records as R
from pybroker.log import LogConfig, LogManager
from pybroker.log.checkpoint import OffsetCheckpointFile
from pybroker.log.producer_state import AppendOrigin

NOW = int(time.time() * 1000)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "pybroker", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def make_dir(tmp_path):
    """A log dir with a cleaned segment (horizons, an empty kept header, a marker)."""
    data = tmp_path / "data"
    mgr = LogManager([str(data)], writer="sync")
    mgr.startup()
    cfg = LogConfig(cleanup_policy="compact", segment_bytes=3000, index_interval_bytes=100,
                    delete_retention_ms=0, min_cleanable_dirty_ratio=0)
    log = mgr.get_or_create_log("t", 0, config=cfg)
    for i in range(40):
        recs = [(b"k%d" % (i % 7), None if i % 9 == 0 else b"value-%d" % i, [("h", b"1")], NOW + i)]
        log.append_as_leader(bytearray(R.build_batch(recs, producer_id=3, producer_epoch=0,
                                                     base_sequence=i, compression=4 if i % 5 else 0)))
    log.append_as_leader(bytearray(R.build_batch([(b"k4", b"last", [], NOW)])))  # supersedes 39
    log.append_as_leader(bytearray(R.build_control_batch(R.CONTROL_ABORT, producer_id=8,
                                                         producer_epoch=1, timestamp=NOW)),
                         origin=AppendOrigin.REPLICATION)
    log.roll()
    mgr.cleaner.clean_now("t", 0)
    mgr.shutdown_sync()
    return data, data / "t-0"


def test_dump_log_prints_batches_records_indexes_snapshots_and_checkpoints(tmp_path):
    data, part = make_dir(tmp_path)
    seg = part / "00000000000000000000"
    logs = sorted(str(p) for p in part.glob("*.log"))
    out = cli("dump-log", "--files", ",".join(logs), "--deep-iteration", "--print-data-log")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    batches = [ln for ln in lines if ln.startswith("baseOffset:")]
    assert batches and all("isvalid: true" in ln for ln in batches)
    assert any("deleteHorizonMs: OptionalLong[" in ln for ln in batches)
    assert any("count: 0" in ln for ln in batches)          # the producer's last batch, emptied
    records = [ln for ln in lines if ln.startswith("| offset:")]
    assert any("endTxnMarker: ABORT coordinatorEpoch: 0" in ln for ln in records)
    assert any("key: k6 payload: value-" in ln and "headerKeys: [h]" in ln for ln in records)
    assert out.stdout.count("Dumping ") == len(logs)
    seg = max((p for p in part.glob("*.index")), key=lambda p: p.stat().st_size).with_suffix("")
    assert (part / f"{seg.name}.index").stat().st_size > 0
    files = [f"{seg}.index", f"{seg}.timeindex", *sorted(map(str, part.glob("*.snapshot")))[-1:],
             data / "cleaner-offset-checkpoint", part / "leader-epoch-checkpoint"]
    out = cli("dump-log", "--files", ",".join(map(str, files)))
    assert out.returncode == 0, out.stdout
    assert "offset: " in out.stdout and "position: " in out.stdout
    assert "timestamp: " in out.stdout
    assert "producerId: 3 producerEpoch: 0" in out.stdout
    assert "t-0 " in out.stdout
    out = cli("dump-log", "--files", f"{seg}.index", "--verify-index-only")
    assert out.returncode == 0 and "Mismatches" not in out.stdout


def test_verify_log_passes_a_good_dir_and_names_each_problem(tmp_path):
    data, part = make_dir(tmp_path)
    out = cli("verify-log", data)
    assert out.returncode == 0 and out.stdout.rstrip().endswith("OK"), out.stdout
    seg = part / "00000000000000000000.log"
    raw = bytearray(seg.read_bytes())
    raw[70] ^= 0xFF                                         # inside the first batch's records
    seg.write_bytes(raw)
    idx = part / "00000000000000000000.index"
    entries = bytearray(idx.read_bytes())
    if entries:
        entries[7] ^= 0x01                                  # first entry's position off by one
        idx.write_bytes(entries)
    (part / "00000000000000000099.log.cleaned").write_bytes(b"")
    out = cli("verify-log", part)
    assert out.returncode == 1
    assert "CRC mismatch" in out.stdout and "00000000000000000000.log: batch at byte 0" in out.stdout
    if entries:
        assert "does not point at the batch" in out.stdout
    assert "note:" in out.stdout and ".log.cleaned" in out.stdout
    out = cli("dump-log", "--files", seg)
    assert "isvalid: false" in out.stdout


def test_truncated_and_missing_files_are_reported_not_crashed(tmp_path):
    data, part = make_dir(tmp_path)
    seg = part / "00000000000000000000.log"
    seg.write_bytes(seg.read_bytes()[:-7])
    out = cli("verify-log", data)
    assert out.returncode == 1 and "partial batch" in out.stdout
    out = cli("dump-log", "--files", tmp_path / "nope.log")
    assert out.returncode == 1 and "Cannot read" in out.stdout
    bad = data / "recovery-point-offset-checkpoint"
    bad.write_text("0\n5\nx\n")
    out = cli("verify-log", data)
    assert "malformed checkpoint file" in out.stdout
    assert OffsetCheckpointFile(str(data / "cleaner-offset-checkpoint")).read()
    out = cli("dump-log")
    assert out.returncode == 2 and "--files" in out.stderr
    assert os.path.exists(seg)                              # read-only: nothing was changed
