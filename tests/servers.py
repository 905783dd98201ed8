"""Real processes for the crash, concurrency and proxy tests: the admin CLI, gunicorn and HAProxy.

Each runs from the project root with ``REGISTRY_*`` settings of its own (the
test's database and keys folder), as an operator would run them. Servers bind
ports 5100-5199 only, start in their own process group so that a test can
SIGKILL a master and its workers at once, and write what they print to files
that the tests then read.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from deploy import haproxy

ROOT = Path(__file__).resolve().parents[1]
PORTS = range(5100, 5200)
LOG_ORIGIN = "aeo-registry.test/log"
READY_SECONDS = 60


def registry_env(database_url: str, keys_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "GUNICORN_"))}
    env.update({"REGISTRY_DATABASE_URL": database_url, "REGISTRY_KEYS_DIR": str(keys_dir),
                "REGISTRY_LOG_ORIGIN": LOG_ORIGIN, "REGISTRY_ENV": "development", "PYTHONUNBUFFERED": "1",
                **settings})
    return env


def cli(env: dict[str, str], *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """``flask --app wsgi registry ARGS`` to completion."""
    completed = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "registry", *map(str, args)],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert completed.returncode == 0, (args, completed.stdout, completed.stderr)
    return completed


def start_cli(env: dict[str, str], *args: str) -> subprocess.Popen:
    """``flask --app wsgi registry ARGS`` in the background, its stdout a pipe read line by line."""
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "registry", *map(str, args)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def free_port(taken: frozenset[int] | set[int] = frozenset()) -> int:
    """The first port of PORTS that is free now and not in ``taken`` (held by a server not yet started)."""
    for port in PORTS:
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 5100-5199")


def _wait_ready(server: Gunicorn | HAProxy, output: Path, ready: Callable[[], bool]) -> None:
    """Until ``ready()`` (an OSError counts as not yet); a server that exits or does not get ready is stopped
    (no ``__exit__`` follows a failed ``__enter__``) and fails the test with what it printed."""
    try:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            assert server.process.poll() is None, output.read_text()
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.1)  # waiting for a process to come up, not for time to pass
        raise AssertionError(f"{type(server).__name__} did not get ready:\n{output.read_text()}")
    except BaseException:
        server.stop()
        raise


class Gunicorn:
    """``gunicorn --config gunicorn.conf.py wsgi:app`` on a port of its own."""

    def __init__(self, env: dict[str, str], output: Path, workers: int = 2, threads: int = 4,
                 up: str = "/readyz"):
        self.env = env
        self.output = output
        self.workers = workers
        self.threads = threads
        self.up = up  # the path whose 200 says the server has started
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Gunicorn:
        self.port = free_port()
        with self.output.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}",
                 "--workers", str(self.workers), "--threads", str(self.threads),
                 # Several test servers at once must not share the control socket in $HOME.
                 "--no-control-socket", "wsgi:app"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_ready(self, self.output, lambda: request("GET", f"{self.url}{self.up}")[0] == 200)
        return self

    def kill(self) -> None:
        """SIGKILL to the master and every worker at once: a crash, nothing flushed or finished."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class HAProxy:
    """HAProxy with the configuration deploy/haproxy.py writes, in front of ``instances`` (HOST:PORT)."""

    def __init__(self, instances: list[str], folder: Path, *, cert: Path | None = None, maxconn: int = 4):
        self.instances = instances
        self.folder = folder
        self.cert = cert  # HTTPS only, with this certificate, if given
        self.maxconn = maxconn
        self.admin_socket = folder / "haproxy.sock"
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.cert else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> HAProxy:
        binary = haproxy.binary()
        assert binary is not None, "HAProxy is not installed (Debian package haproxy; make proxy-deps)"
        self.port = free_port()
        address = f"127.0.0.1:{self.port}"
        config = self.folder / "haproxy.cfg"
        config.write_text(haproxy.render(self.instances, binds=[] if self.cert else [address],
                                         tls_binds=[address] if self.cert else [],
                                         cert=str(self.cert) if self.cert else None, maxconn=self.maxconn,
                                         admin_socket=str(self.admin_socket), log="stderr"))
        output = self.folder / "haproxy.log"
        with output.open("a") as log:
            self.process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

        def listening() -> bool:
            self.stats()
            socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
            return True

        _wait_ready(self, output, listening)
        return self

    def stats(self) -> dict[str, dict[str, str]]:
        """Each instance's row of HAProxy's statistics, by address."""
        return haproxy.instances(self.admin_socket)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)

    def __enter__(self) -> HAProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def request(method: str, url: str, body: Any = None, token: str | None = None,
            timeout: float = 120) -> tuple[int, Any]:
    """One HTTP request; (status, parsed JSON or text). Connection failures raise OSError."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    outgoing = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(outgoing, timeout=timeout) as response:
            status, raw, kind = response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        status, raw, kind = error.code, error.read(), error.headers.get_content_type()
    text = raw.decode()
    return status, json.loads(text) if kind.endswith("json") else text


def witness_env() -> dict[str, str]:
    """A witness runs without any of the registry's settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "GUNICORN_"))}


class WitnessServer:
    """``python -m registry.witness serve``, as a partner runs it: its own key, state file and port.

    ``start`` may be called again after ``stop``: the witness comes back on
    the same port with the same state, as after a restart.
    """

    ports: ClassVar[set[int]] = set()  # of every witness made by this test process

    def __init__(self, folder: Path, name: str, log_origin: str, log_vkey: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.key_file, self.state_file, self.output = folder / "witness.pem", folder / "witness.db", folder / "out"
        self.vkey = self._run("keygen", self.key_file, "--name", name).stdout.strip()
        self._run("add-log", "--state", self.state_file, "--origin", log_origin, "--vkey", log_vkey)
        # Kept for this witness's life, so that it comes back where the registry knows it.
        self.port = free_port(WitnessServer.ports)
        WitnessServer.ports.add(self.port)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def public(self) -> bytes:
        """The witness's raw Ed25519 public key, for the spec-written verifier."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        from registry.crypto import keys

        return keys.read_private(self.key_file).private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @staticmethod
    def _run(*args) -> subprocess.CompletedProcess:
        completed = subprocess.run([sys.executable, "-m", "registry.witness", *map(str, args)], cwd=ROOT,
                                   env=witness_env(), capture_output=True, text=True, timeout=READY_SECONDS,
                                   check=False)
        assert completed.returncode == 0, completed.stderr
        return completed

    def start(self) -> WitnessServer:
        with self.output.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "registry.witness", "serve", "--state", str(self.state_file),
                 "--key", str(self.key_file), "--name", self.name, "--port", str(self.port)],
                cwd=ROOT, env=witness_env(), stdout=subprocess.PIPE, stderr=log, text=True)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.process.stdout.readline()), daemon=True).start()
        try:
            started = lines.get(timeout=READY_SECONDS)
        except queue.Empty:
            raise AssertionError(f"witness did not start:\n{self.output.read_text()}") from None
        assert f"listening on {self.url}/add-checkpoint" in started, (started, self.output.read_text())
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        if self.process is not None:
            self.process.stdout.close()

    def __enter__(self) -> WitnessServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
