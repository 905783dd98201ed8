"""gunicorn as gunicorn.conf.py configures it: gthread workers on the master's socket, a port in use refused."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .servers import ROOT, Gunicorn, cli, registry_env, request


@pytest.fixture
def env(database_url, keys_dir):
    environment = registry_env(database_url, keys_dir)
    cli(environment, "init")
    return environment


def _holders(port: int, state: str) -> list[int]:
    """The pid of each process holding a server-side socket of ``port`` in ``state``, once per socket."""
    listing = subprocess.run(["ss", "-tnpH", "state", state, f"( sport = :{port} )"], capture_output=True, text=True,
                             check=True).stdout
    return sorted(int(pid) for pid in re.findall(r"pid=(\d+),", listing))


def _workers(server: Gunicorn) -> list[int]:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return sorted(int(p) for p in children.read_text().split())


def test_the_workers_share_the_masters_socket(env, tmp_path):
    with Gunicorn(env, tmp_path / "gunicorn.log", workers=2, threads=2) as server:
        workers = _workers(server)
        assert len(workers) == 2
        assert _holders(server.port, "listening") == sorted([server.process.pid, *workers])
        assert request("GET", f"{server.url}/readyz")[0] == 200


def test_a_port_in_use_is_refused_not_shared(env, tmp_path):
    with Gunicorn(env, tmp_path / "first.log") as first:
        second = subprocess.run(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{first.port}",
             "--no-control-socket", "wsgi:app"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode != 0
        assert f"cannot listen on 127.0.0.1:{first.port}: Address already in use" in second.stdout + second.stderr
        assert request("GET", f"{first.url}/readyz")[0] == 200


def test_the_port_is_free_again_at_once_after_a_stop(env, tmp_path):
    server = Gunicorn(env, tmp_path / "gunicorn.log").start()
    port = server.port
    assert request("GET", f"{server.url}/readyz")[0] == 200  # leaves a connection in TIME_WAIT
    server.stop()
    output = tmp_path / "again.log"
    with output.open("w") as log:
        again = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
             "--no-control-socket", "wsgi:app"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert again.poll() is None, output.read_text()
            try:
                if request("GET", f"http://127.0.0.1:{port}/readyz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)  # waiting for the process to come up
        else:
            pytest.fail(f"gunicorn did not come up on the port just freed:\n{output.read_text()}")
    finally:
        again.terminate()
        again.wait(timeout=30)
