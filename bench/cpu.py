"""Where the machine's CPU goes during a wrk round, per kind of process and per request.

Both targets that compare verify with /healthz are about CPU: server, load
generator and (on PostgreSQL) database share two cores. This splits each
round's CPU time between the server's workers, their batch helpers, the
reverse proxy (HAProxy), the PostgreSQL server's processes (every backend
included), wrk, and the rest of the machine (the kernel's network work done
outside any process, other services), from the kernel's own counters. ``stolen`` is time the
hypervisor gave to other guests while this one had work. A host that
slows the cores down instead (other guests on the same caches) does not
show there: it shows as more CPU per request for the same work.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _ticks(pid: int) -> int | None:
    """User plus system CPU of a process so far, in clock ticks (None if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # the name may hold spaces and parentheses
    return int(fields[11]) + int(fields[12])


def database_pids() -> list[int]:
    """The PostgreSQL server's processes on this machine (none while a SQLite run has it idle, or without it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _machine() -> tuple[int, int]:
    """Busy and stolen ticks of the whole machine so far (/proc/stat, all CPUs)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq, steal


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """CPU used between ``start`` and ``stop`` by each kind of process that ``kinds`` names.

    ``kinds`` is asked at both ends (a worker or backend may come or go); a
    process first seen at the end counts from zero. The load generator is
    this process's child, waited for before ``stop``: its CPU comes from
    the kernel's account of finished children, so ``wrk`` also holds any
    other child waited for meanwhile (none in the bench).
    """

    def __init__(self, kinds: Callable[[], dict[str, list[int]]]):
        self.kinds = kinds

    def start(self) -> None:
        self._before = {pid: _ticks(pid) for pids in self.kinds().values() for pid in pids}
        self._machine = _machine()
        self._children = _children_seconds()
        self._wall = os.times().elapsed

    def stop(self, requests: int) -> dict[str, float]:
        """µs of CPU per request for each kind, ``wrk``, ``rest`` and ``machine``; ``cores`` busy; ``stolen`` share."""
        seconds = {}
        for kind, pids in self.kinds().items():
            used = 0
            for pid in pids:
                now = _ticks(pid)
                if now is not None:
                    used += now - (self._before.get(pid) or 0)
            seconds[kind] = used / _TICK
        seconds["wrk"] = _children_seconds() - self._children
        busy, steal = _machine()
        wall = os.times().elapsed - self._wall
        machine = (busy - self._machine[0]) / _TICK
        seconds["rest"] = max(0.0, machine - sum(seconds.values()))
        seconds["machine"] = machine
        per_request = {kind: round(value * 1e6 / max(requests, 1)) for kind, value in seconds.items()}
        stolen = (steal - self._machine[1]) / _TICK
        return {**per_request, "cores": round(machine / wall, 2) if wall else 0.0,
                "stolen": round(stolen / (machine + stolen), 3) if machine + stolen else 0.0}
