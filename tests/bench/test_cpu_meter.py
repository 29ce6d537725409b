"""bench/cpu.py, which bench/bench_orders.py uses to say which process spent the machine's CPU: a child that burns
CPU is charged to its own tree, to its name, and to the machine — and a process that sleeps is charged nothing."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "cpu.py"
spec = importlib.util.spec_from_file_location("bench_cpu", BENCH)
cpu = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cpu)

pytestmark = pytest.mark.skipif(not cpu.available(), reason="needs Linux /proc")

BURN = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"
# A parent that starts a burning grandchild, so the tree has to be followed below the first level.
PARENT = ("import subprocess, sys, time\nchild = subprocess.Popen([sys.executable, '-c', sys.argv[1]])\n"
          "child.wait()\ntime.sleep(0.3)\n")


def _wait_started(process: subprocess.Popen) -> None:
    # The process exists in /proc as soon as Popen returns; give the grandchild time to be forked.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(cpu.tree(process.pid)()) < 2:
        time.sleep(0.01)


def test_it_charges_a_burning_grandchild_to_its_tree_and_to_the_machine():
    parent = subprocess.Popen([sys.executable, "-c", PARENT, BURN])
    try:
        _wait_started(parent)
        meter = cpu.Meter({"tree": cpu.tree(parent.pid), "nobody": cpu.named("no-such-process-name")})
        before = meter.read()
        grandchildren = cpu.tree(parent.pid)() - {parent.pid}
        assert grandchildren, "the burning grandchild was not found below its parent"
        deadline = time.monotonic() + 30  # CPU time, not wall time, is what the child waits for: allow a busy machine
        while (spent := meter.spent_since(before))["tree"] < 0.3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert spent["tree"] >= 0.3
        assert spent["machine"] >= spent["tree"] - 0.05  # the machine's clock ticks too (at 1/CLK_TCK)
        assert spent["nobody"] == 0
        assert spent["stolen"] >= 0
    finally:
        parent.wait(timeout=30)


def test_it_finds_processes_by_command_name_and_ignores_a_sleeping_one():
    # It says when it has started: its start-up is CPU too, and the kernel renames a process only during its exec.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(2)"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert sleeper.stdout.readline().strip() == "ready"
        comm = Path(f"/proc/{sleeper.pid}/comm").read_text().strip()
        assert sleeper.pid in cpu.named(comm)()
        meter = cpu.Meter({"sleeper": lambda: {sleeper.pid}})
        before = meter.read()
        time.sleep(0.3)
        assert meter.spent_since(before)["sleeper"] < 0.05
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_process_gone_before_the_reading_counts_nothing_instead_of_failing():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    meter = cpu.Meter({"gone": lambda: {gone.pid}})
    assert cpu.process_cpu(gone.pid) is None
    assert meter.spent_since(meter.read())["gone"] == 0
