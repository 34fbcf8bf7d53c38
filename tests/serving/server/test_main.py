"""serving.server.main: the process entry's glibc malloc arena cap."""

from __future__ import annotations

import ctypes.util

import pytest

from serving.server.main import cap_malloc_arenas


@pytest.mark.skipif(ctypes.util.find_library("c") != "libc.so.6", reason="glibc only (mallopt)")
def test_arena_cap_is_applied_unless_the_user_set_one(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert cap_malloc_arenas(8) is True  # a generous cap: harmless to this test process
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert cap_malloc_arenas(8) is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=4")
    assert cap_malloc_arenas(8) is False
