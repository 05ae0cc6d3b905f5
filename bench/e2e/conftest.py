"""pytest for the harness itself: ``python -m pytest bench/e2e``. bench/ goes on sys.path, as
bench/run_matrix.py puts it there, so ``import kafka_ref`` and ``from e2e import ...`` work."""
import pathlib
import sys

BENCH = pathlib.Path(__file__).resolve().parents[1]
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
