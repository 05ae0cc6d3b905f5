"""Index maps carry the random-access hint (MADV_RANDOM): the first write into a fresh, sparse
index file must not fault in a whole readahead window of zeroed pages (read_ahead_kb, 8 MiB on
the benchmark machine), and it stays so after a remap (trim, resize)."""
import mmap
import os

import pytest

from pybroker.log.index import OffsetIndex, TimeIndex

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/smaps") or
                                not hasattr(mmap, "MADV_RANDOM"), reason="Linux smaps/madvise only")


def vm_flags(path):
    """The VmFlags of this process's mapping of `path` (smaps; "rr" = random-read advice)."""
    with open("/proc/self/smaps") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if line.endswith(" " + path):
            for follow in lines[i + 1:]:
                if follow.startswith("VmFlags:"):
                    return follow.split()[1:]
    raise AssertionError(f"{path} is not mapped")


@pytest.mark.parametrize("cls", [OffsetIndex, TimeIndex])
def test_index_map_is_advised_random(tmp_path, cls):
    path = str(tmp_path / f"00000000000000000000.{cls.__name__}")
    index = cls(path, 0, 10 * 1024 * 1024)
    try:
        assert "rr" in vm_flags(path)
        index.resize(1024 * 1024)  # remapped: the hint is given again
        assert "rr" in vm_flags(path)
    finally:
        index.close()
