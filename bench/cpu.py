"""Who spent the machine's CPU during a benchmark round: each party's CPU seconds, read from /proc (Linux).

A throughput ratio between two endpoints on a CPU-bound machine is the ratio of what one request of each costs
the *whole machine* — the server, but also the load generator, PostgreSQL, Redis and, for an order, the channel
simulator, all on the same cores. ``Meter`` reads each party's CPU time (user + system, every thread) before and
after a round, so a run can say per request how much each party spent and what the server alone would allow.

    meter = Meter({"server": tree(gunicorn.pid), "postgres": named("postgres")})
    before = meter.read()
    ... run the load ...
    spent = meter.spent_since(before)   # {"server": 3.1, "postgres": 0.8, "machine": 5.6}  (CPU seconds)

A process that exits between the two readings loses what it spent after the first one; one that starts between
them counts whole. The load generator measures itself (bench/load.py reports its own CPU), since it is started
and gone within the round.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def available() -> bool:
    return (PROC / "stat").exists()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:  # gone, or not ours to read
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after its closing one.
    return text.rsplit(")", 1)[1].split()


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) the process has spent so far; None if it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After the name: state(3) ppid(4) … utime(14) stime(15), i.e. indexes 11 and 12 here.
    return (int(fields[11]) + int(fields[12])) / TICKS


def _pids() -> list[int]:
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def tree(root: int) -> Callable[[], set[int]]:
    """The process ``root`` and all its descendants (gunicorn's master and workers), found afresh each reading."""

    def pids() -> set[int]:
        children: dict[int, list[int]] = {}
        for pid in _pids():
            fields = _stat_fields(pid)
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(pid)
        found, todo = set(), [root]
        while todo:
            pid = todo.pop()
            if pid not in found:
                found.add(pid)
                todo.extend(children.get(pid, ()))
        return found

    return pids


def named(*names: str) -> Callable[[], set[int]]:
    """Processes whose command name (``/proc/PID/comm``) is one of ``names``: every PostgreSQL backend and helper
    process is ``postgres``, Redis is ``redis-server``."""

    def pids() -> set[int]:
        found = set()
        for pid in _pids():
            try:
                comm = (PROC / str(pid) / "comm").read_text().strip()
            except OSError:
                continue
            if comm in names:
                found.add(pid)
        return found

    return pids


def machine_times() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of all cores since boot, from the first line of /proc/stat. Busy is user, nice,
    system, irq and softirq time — what processes and the kernel ran; stolen is time the hypervisor gave our virtual
    cores to someone else (no process's CPU time includes it)."""
    values = [int(value) for value in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    values += [0] * (8 - len(values))
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq) / TICKS, steal / TICKS


class Meter:
    def __init__(self, parties: dict[str, Callable[[], set[int]]]):
        self.parties = parties

    def read(self) -> dict:
        """Each party's processes with their CPU seconds so far, and the machine's busy seconds."""
        reading = {name: {pid: cpu for pid in find() if (cpu := process_cpu(pid)) is not None}
                   for name, find in self.parties.items()}
        reading["machine"], reading["stolen"] = machine_times()
        return reading

    def spent_since(self, before: dict) -> dict[str, float]:
        """CPU seconds each party spent between ``before`` and now, with the whole machine's busy seconds (key
        ``machine``) and the seconds the hypervisor took from it (key ``stolen``)."""
        now = self.read()
        spent = {}
        for name in self.parties:
            earlier = before.get(name, {})
            spent[name] = sum(cpu - earlier.get(pid, 0.0) for pid, cpu in now[name].items())
        spent["machine"] = now["machine"] - before["machine"]
        spent["stolen"] = now["stolen"] - before["stolen"]
        return spent
