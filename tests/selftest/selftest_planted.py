"""Planted selftest cases for tests/selftest/test_selftest.py: one that passes, one that fails an
assertion, one that raises, one that aborts the process, and one after them all."""
import os

from gentk.selftest.cases import Case


def _pass():
    return None


def _fail():
    assert 1 + 1 == 3, "planted mismatch"


def _raise():
    raise RuntimeError("planted kernel error")


def _abort():
    os.abort()


def build(device, families, backends, timing=True, compile=False):
    plan = [("ok", _pass), ("mismatch", _fail), ("raises", _raise), ("aborts", _abort), ("after", _pass)]
    return [Case(f"{family}/{backend}/{name}", family, backend, "parity", run)
            for family in families for backend in backends for name, run in plan]
