"""CRC-32C: known vectors, agreement with the `crc32c` and `google_crc32c` packages, continuation,
buffer types and errors, on every path the CPU can run (AVX-512, SSE4.2, portable) and on the
pure-Python twin (with small inputs: it does ~100 ns per byte)."""
import array
import mmap
import pathlib
import random
import threading

import crc32c as crc32c_pkg
import google_crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbtest import PURE
from pybroker.codec._pure import crc32c as pure_mod

if PURE:
    compiled_mod = None
else:
    from pybroker_core import crc32c as compiled_mod


def _cpu_flags():
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _paths():
    """(module, path name) pairs to run: the twin always, every compiled path the CPU has."""
    paths = [pytest.param((pure_mod, "python"), id="pure")]
    if compiled_mod is not None:
        paths += [pytest.param((compiled_mod, name), id=f"compiled-{name}")
                  for name in compiled_mod.available()]
    return paths


@pytest.fixture(params=_paths())
def path(request):
    """(crc32c function, is_pure) with the module forced onto one path; restored afterwards."""
    mod, name = request.param
    mod.force_implementation(name)
    assert mod.implementation() == name
    yield mod.crc32c, mod is pure_mod
    mod.force_implementation(None)


@pytest.fixture
def crc(path):
    return path[0]


def reference(data, start=0):
    """The `crc32c` package (hardware or its own software path) as the oracle."""
    value = crc32c_pkg.crc32c(bytes(data), start)
    assert value == google_crc32c.extend(start, bytes(data))  # the two oracles agree
    return value


def data_of(n, seed=0):
    return random.Random(seed * 1_000_003 + n).randbytes(n)


# Lengths where a path changes: 3-stream blocks of 3*64, 3*256, 3*1024, 3*4096 bytes; the AVX-512
# path from 256 bytes, folding 256 then 64 bytes at a time; 8-byte words; 1 MiB.
BOUNDARIES = sorted({b + d for b in (8, 64, 192, 256, 320, 512, 768, 3072, 12288,
                                     12288 + 3072 + 768 + 192 + 63, 1 << 20)
                     for d in (-9, -1, 0, 1, 7, 8, 65) if b + d >= 0})


# --- known vectors -----------------------------------------------------------------------------

ISCSI_READ_PDU = bytes.fromhex(
    "01c00000000000000000000000000000"
    "14000000000004000000001400000018"
    "28000000000000000200000000000000")

KNOWN = [
    (b"", 0x00000000),
    (b"a", 0xC1D04330),
    (b"123456789", 0xE3069283),          # the CRC-32C check value
    (bytes(32), 0x8A9136AA),              # RFC 3720 B.4: 32 bytes of zeros
    (b"\xff" * 32, 0x62A8AB43),           # RFC 3720 B.4: 32 bytes of 0xFF
    (bytes(range(32)), 0x46DD794E),       # RFC 3720 B.4: incrementing 0x00..0x1F
    (bytes(range(31, -1, -1)), 0x113FDB5C),  # RFC 3720 B.4: decrementing 0x1F..0x00
    (ISCSI_READ_PDU, 0xD9963A56),         # RFC 3720 B.4: an iSCSI SCSI Read (10) command PDU
]


@pytest.mark.parametrize("data,expected", KNOWN, ids=[f"v{i}" for i in range(len(KNOWN))])
def test_known_vectors(crc, data, expected):
    assert crc(data) == expected


def test_known_vectors_repeated_to_every_path(crc, path):
    """Vectors long enough for the folding paths: the check string repeated, RFC patterns x1024."""
    n = 300 if path[1] else 64 * 1024
    for unit in (b"123456789", bytes(32), b"\xff" * 32, bytes(range(32))):
        data = unit * (n // len(unit))
        assert crc(data) == reference(data)


# --- agreement with the packages ---------------------------------------------------------------

def test_every_length_up_to_1100(crc, path):
    top = 300 if path[1] else 1100
    for n in range(top):
        data = data_of(n)
        assert crc(data) == reference(data), n


def test_boundary_lengths(crc, path):
    lengths = [n for n in BOUNDARIES if n <= (800 if path[1] else 1 << 21)]
    for n in lengths:
        data = data_of(n, seed=1)
        assert crc(data) == reference(data), n
        assert crc(data, 0xDEADBEEF) == reference(data, 0xDEADBEEF), n


def test_odd_sizes_up_to_several_kib(crc, path):
    rng = random.Random(7)
    sizes = [rng.randrange(1, 600 if path[1] else 9000) | 1 for _ in range(40)]
    for n in sizes:
        data = data_of(n, seed=2)
        assert crc(data) == reference(data), n


def test_one_mib(crc, path):
    if path[1]:
        pytest.skip("the pure twin is too slow for 1 MiB (covered by smaller sizes)")
    data = data_of(1 << 20, seed=3)
    assert crc(data) == reference(data)
    assert crc(data, 0x12345678) == reference(data, 0x12345678)


def test_unaligned_memoryview_offsets(crc, path):
    backing = data_of(20000, seed=4)
    view = memoryview(backing)
    lengths = (0, 1, 5, 63, 200) if path[1] else (0, 1, 5, 63, 200, 257, 1000, 4099, 16001)
    for offset in range(9):
        for n in lengths:
            chunk = view[offset:offset + n]
            assert crc(chunk) == reference(chunk), (offset, n)


def test_single_bit_changes_change_the_crc(crc, path):
    data = bytearray(data_of(100 if path[1] else 5000, seed=5))
    base = crc(data)
    for i in (0, 1, len(data) // 2, len(data) - 1):
        data[i] ^= 0x10
        assert crc(data) != base
        assert crc(data) == reference(data)
        data[i] ^= 0x10


# --- continuation ------------------------------------------------------------------------------

def test_continuation_equals_whole(crc, path):
    whole = data_of(700 if path[1] else 40000, seed=6)
    cuts = [0, 1, 7, 8, 9, 255, 256, 257, 699] + ([] if path[1] else [4096, 12289, 39999])
    expected = reference(whole)
    for cut in cuts:
        assert crc(whole[cut:], crc(whole[:cut])) == expected, cut


def test_continuation_in_many_pieces(crc, path):
    whole = data_of(600 if path[1] else 70000, seed=7)
    rng = random.Random(8)
    value, pos = 0, 0
    while pos < len(whole):
        step = rng.randrange(0, 3000 if not path[1] else 100)
        value = crc(whole[pos:pos + step], value)
        pos += step
    assert value == reference(whole)


@settings(max_examples=60, deadline=None)
@given(a=st.binary(max_size=600), b=st.binary(max_size=600), start=st.integers(0, 0xFFFFFFFF))
def test_continuation_property(a, b, start):
    for mod, _ in [p.values[0] for p in _paths()]:
        assert mod.crc32c(b, mod.crc32c(a, start)) == mod.crc32c(a + b, start)
        assert mod.crc32c(a + b, start) == reference(a + b, start)


# --- buffer types and errors -------------------------------------------------------------------

def test_buffer_types(crc):
    raw = data_of(1000, seed=9)
    expected = reference(raw)
    assert crc(bytearray(raw)) == expected
    assert crc(memoryview(raw)) == expected
    assert crc(memoryview(bytearray(raw))) == expected
    assert crc(memoryview(raw).cast("I")) == expected        # non-'B' format: raw bytes count
    assert crc(memoryview(raw).cast("B", (10, 100))) == expected  # 2-D, C-contiguous
    doubles = array.array("d", [1.5, -2.25, 1e300])
    assert crc(doubles) == reference(doubles.tobytes())


def test_mmap(crc, tmp_path):
    raw = data_of(70000, seed=10)
    file = tmp_path / "segment.log"
    file.write_bytes(raw)
    with open(file, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert crc(m) == reference(raw)
        assert crc(memoryview(m)[3:1003]) == reference(raw[3:1003])


def test_non_contiguous_buffer_is_rejected(crc):
    with pytest.raises(BufferError):
        crc(memoryview(b"abcdefgh")[::2])


@pytest.mark.parametrize("bad", ["text", 5, None, 1.5, [1, 2]])
def test_non_buffer_is_rejected(crc, bad):
    with pytest.raises(TypeError):
        crc(bad)


@pytest.mark.parametrize("start,error", [(-1, OverflowError), (1 << 32, OverflowError),
                                         (1.0, TypeError), ("1", TypeError), (None, TypeError)])
def test_bad_start_crc(crc, start, error):
    with pytest.raises(error):
        crc(b"abc", start)


def test_start_crc_bounds_and_index(crc):
    assert crc(b"abc", 0xFFFFFFFF) == reference(b"abc", 0xFFFFFFFF)
    assert crc(b"abc", True) == reference(b"abc", 1)


# --- path selection ----------------------------------------------------------------------------

@pytest.mark.skipif(PURE, reason="compiled module only")
def test_compiled_uses_the_best_path_the_cpu_has():
    flags = _cpu_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags")
    if {"avx512f", "vpclmulqdq"} <= flags:
        best = "avx512"
    elif {"sse4_2", "pclmulqdq"} <= flags:
        best = "sse4.2"
    else:
        best = "portable"
    assert compiled_mod.implementation() == best
    assert compiled_mod.available()[-1] == best
    assert compiled_mod.hardware() == (best != "portable")


@pytest.mark.skipif(PURE, reason="compiled module only")
def test_force_portable_switches_and_restores():
    best = compiled_mod.implementation()
    data = data_of(5000, seed=11)
    try:
        compiled_mod.force_portable(True)
        assert compiled_mod.implementation() == "portable"
        assert not compiled_mod.hardware()
        assert compiled_mod.crc32c(data) == reference(data)
    finally:
        compiled_mod.force_portable(False)
    assert compiled_mod.implementation() == best


def test_force_implementation_rejects_unknown_names():
    mods = [pure_mod] + ([compiled_mod] if compiled_mod is not None else [])
    for mod in mods:
        with pytest.raises(ValueError):
            mod.force_implementation("quantum")


def test_pure_twin_reports_no_hardware():
    assert pure_mod.hardware() is False
    assert pure_mod.implementation() == "python"


@pytest.mark.skipif(PURE, reason="compiled module only")
def test_large_inputs_from_threads_agree():
    """Inputs >= 64 KiB are checksummed with the GIL released; results must stay exact."""
    blobs = [data_of(300_000 + i, seed=12) for i in range(4)]
    expected = [reference(b) for b in blobs]
    results = {}

    def work(i):
        results[i] = [compiled_mod.crc32c(blobs[i]) for _ in range(20)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[i] == [expected[i]] * 20 for i in range(4))


@pytest.mark.skipif(PURE, reason="compiled module only")
def test_c_api_is_exported_for_cimport():
    """records.pyx does `from pybroker_core.crc32c cimport crc32c_update`: Cython resolves it through
    the module's __pyx_capi__ capsules at import time, so they must be there with these signatures."""
    capi = compiled_mod.__pyx_capi__
    assert set(capi) >= {"crc32c_update", "crc32c_hw"}
    assert "uint32_t (uint32_t, unsigned char const *, size_t)" in repr(capi["crc32c_update"])
