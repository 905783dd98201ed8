"""Drive a running server with wrk: a Lua script per target, figures read back as JSON.

Every request goes through the same Lua ``request`` function, for /healthz as
for /verify, so the load generator costs the same on both and the ratio
between them is fair.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

_SCRIPT = """\
local paths = {%(paths)s}
wrk.headers["Authorization"] = "Bearer %(token)s"
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(id * 7919 + os.time())
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"connect\\": %%d, \\"read\\": %%d, \\"write\\": %%d, " ..
    "\\"status\\": %%d, \\"timeout\\": %%d, \\"p50_us\\": %%d, \\"p90_us\\": %%d, \\"p99_us\\": %%d, " ..
    "\\"max_us\\": %%d, \\"mean_us\\": %%.1f}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


class WrkError(RuntimeError):
    """wrk failed or printed no figures."""


@dataclass
class Figures:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # socket errors and timeouts
    non_2xx: int
    per_instance: list[int] | None = None  # requests HAProxy sent to each instance, set by the caller
    cpu: dict[str, float] | None = None  # where the machine's CPU went (bench.cpu.Meter), set by the caller

    def as_json(self) -> dict:
        return asdict(self)


def write_script(path: Path, paths: list[str], token: str) -> Path:
    quoted = ",\n".join(json.dumps(p) for p in paths)
    path.write_text(_SCRIPT % {"paths": quoted, "token": token})
    return path


def run(url: str, script: Path, *, seconds: int, connections: int = 16, threads: int = 2) -> Figures:
    """One wrk run."""
    binary = shutil.which("wrk")
    if binary is None:
        raise WrkError("wrk is not installed (Debian package wrk; `make bench` installs it)")
    command = [binary, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
               "-s", str(script), url]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=seconds + 60)
    except BaseException:
        process.kill()
        process.wait()
        raise
    line = next((text for text in stdout.splitlines() if text.startswith("WRKJSON ")), None)
    if process.returncode != 0 or line is None:
        raise WrkError(f"wrk failed ({process.returncode}): {stdout[-2000:]} {stderr[-2000:]}")
    raw = json.loads(line[len("WRKJSON "):])
    seconds_run = raw["duration_us"] / 1e6
    return Figures(
        requests=raw["requests"],
        seconds=round(seconds_run, 2),
        rps=round(raw["requests"] / seconds_run, 1),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        non_2xx=raw["status"],
    )
