"""The benchmark's CPU meter: each process's CPU lands in its kind, a finished child's in wrk's."""

from __future__ import annotations

import subprocess
import sys

from bench import cpu

# Says it is ready, burns the CPU time it is told once it reads a line, and says when it is done.
_BURNER = """
import sys, time
print("ready", flush=True)
sys.stdin.readline()
end = time.process_time() + float(sys.argv[1])
while time.process_time() < end:
    pass
print("done", flush=True)
sys.stdin.readline()
"""


def _burn(seconds: float) -> None:
    subprocess.run([sys.executable, "-c", _BURNER, str(seconds)], input="go\n\n", text=True,
                   capture_output=True, check=True)


def _waiting_burner(seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _BURNER, str(seconds)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def test_a_process_cpu_is_split_by_kind_and_per_request():
    with _waiting_burner(0.4) as server, _waiting_burner(0) as idle:
        try:
            # Both past their start-up, which is not what is measured.
            assert server.stdout.readline() == idle.stdout.readline() == "ready\n"
            meter = cpu.Meter(lambda: {"server": [server.pid], "idle": [idle.pid]})
            meter.start()
            server.stdin.write("go\n")
            server.stdin.flush()
            _burn(0.2)  # a child waited for, as wrk is
            assert server.stdout.readline() == "done\n"
            figures = meter.stop(requests=10)
        finally:
            server.kill()
            idle.kill()
    # µs per request, from clock ticks of 10 ms: 0.4 s over 10 requests is 40,000.
    assert 35_000 <= figures["server"] <= 60_000
    assert figures["idle"] == 0
    assert figures["wrk"] >= 18_000
    assert figures["machine"] >= figures["server"] + figures["wrk"] - 2_000
    assert 0 < figures["cores"] <= 2.5
    assert 0 <= figures["stolen"] < 1


def test_a_process_gone_before_the_end_is_left_out_rather_than_failing():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    meter = cpu.Meter(lambda: {"server": [gone.pid]})
    meter.start()
    assert meter.stop(requests=1)["server"] == 0
