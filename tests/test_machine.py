"""Tests of elasticity.machine: the machine description benchmarks record."""

import os
import platform

from elasticity import machine


def test_describe_names_the_cpu_and_counts():
    info = machine.describe()
    assert set(info) == {"platform", "cpu", "cpu_count", "memory_gb", "python"}
    assert info["cpu"] and info["cpu_count"] == os.cpu_count() and info["memory_gb"] > 0


def test_cpu_name_falls_back_without_proc(monkeypatch):
    monkeypatch.setattr(machine.Path, "read_text", lambda self: (_ for _ in ()).throw(OSError("no /proc")))
    assert machine.cpu_name() == (platform.processor() or platform.machine())
