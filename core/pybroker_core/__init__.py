"""Compiled hot paths of pybroker (Cython/C). Use them through pybroker.codec, which falls back to
the pure-Python twins in pybroker/codec/_pure when these are not built."""
