"""The server under test: gunicorn instances (gunicorn.conf.py) behind HAProxy (deploy/), always stopped."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from deploy import haproxy


class ServerError(RuntimeError):
    """The server did not come up, or died."""


# VmHWM is the kernel's own peak of the whole resident set, mapped database
# pages included (SQLite readers map the file). RssAnon + RssShmem is what the
# worker holds privately; the kernel keeps no peak of it, so it is sampled.
_MEMORY = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem")


def _status(pid: int) -> dict[str, int]:
    """VmHWM, VmRSS and its parts (anonymous, file, shared memory) of a process in kB (empty if it is gone)."""
    figures = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in _MEMORY:
                figures[name] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return figures


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _sample(peaks: dict[int, dict[str, int]], pid: int) -> None:
    figures = _status(pid)
    peak = peaks.setdefault(pid, dict.fromkeys((*_MEMORY, "private"), 0))
    for name, value in figures.items():
        peak[name] = max(peak[name], value)
    peak["private"] = max(peak["private"], figures.get("RssAnon", 0) + figures.get("RssShmem", 0))


def _peaks_mb(peaks: dict[int, dict[str, int]]) -> list[dict]:
    return [{"pid": pid, "peak_rss_mb": round(p["VmHWM"] / 1024, 1), "rss_mb": round(p["VmRSS"] / 1024, 1),
             "peak_private_mb": round(p["private"] / 1024, 1), "peak_file_mb": round(p["RssFile"] / 1024, 1)}
            for pid, p in sorted(peaks.items())]


def disk_read_bytes() -> int | None:
    """Bytes read from the machine's disks so far (whole devices in /proc/diskstats), or None.

    Counted for the machine, not a process: on PostgreSQL the reads are the
    server's, not the worker's.
    """
    try:
        total = 0
        for line in Path("/proc/diskstats").read_text().splitlines():
            parts = line.split()
            if Path(f"/sys/block/{parts[2]}").exists() and not parts[2].startswith(("loop", "ram")):
                total += int(parts[5]) * 512  # sectors read, always of 512 bytes here
        return total
    except (OSError, IndexError, ValueError):
        return None


def _memory(peaks: dict[int, dict[str, int]], helper_peaks: dict[int, dict[str, int]]) -> dict:
    per_worker, helpers = _peaks_mb(peaks), _peaks_mb(helper_peaks)
    return {"workers": per_worker, "helpers": helpers,
            **{key: max((w[key] for w in per_worker), default=0.0)
               for key in ("peak_rss_mb", "peak_private_mb", "peak_file_mb")},
            "helper_peak_rss_mb": max((h["peak_rss_mb"] for h in helpers), default=None)}


class _Server:
    """A server process in a session of its own (with its children), its output in ``log_file``."""

    name = "server"
    stop_seconds = 10  # how long it may take to stop before SIGKILL

    def __init__(self, log_file: Path):
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    def _launch(self, command: list[str], **options) -> None:
        with self.log_file.open("ab") as handle:
            self.process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                                            **options)

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        """Until ``ready()`` (an OSError counts as not yet); a server that exits or takes too long fails."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"{self.name} exited with {self.process.returncode}; see {self.log_file}")
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise ServerError(f"{self.name} did not {what} in {timeout} s; see {self.log_file}")

    def stop(self) -> None:
        """SIGTERM to the session, SIGKILL if it outlasts ``stop_seconds``."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=self.stop_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Gunicorn(_Server):
    """One registry instance: a gunicorn master and its workers on a port of its own."""

    name = "gunicorn"
    stop_seconds = 35  # past graceful_timeout

    def __init__(self, root: Path, env: dict[str, str], port: int, log_file: Path):
        super().__init__(log_file)
        self.root = root
        self.env = env
        self.port = port
        self.peaks: dict[int, dict[str, int]] = {}  # worker pid -> highest of each figure seen, kB
        self.helper_peaks: dict[int, dict[str, int]] = {}  # the same for the workers' batch helpers
        self._sampling = threading.Event()
        self._sampler: threading.Thread | None = None

    def start(self, timeout: float = 60) -> None:
        # No control socket: every instance's would be the same path, each taking it over from the one before.
        self._launch([str(self.root / ".venv/bin/gunicorn"), "--config", "gunicorn.conf.py", "--no-control-socket",
                      "wsgi:app"], cwd=self.root, env={**self.env, "REGISTRY_BIND": f"127.0.0.1:{self.port}"})
        self._wait(lambda: _get("127.0.0.1", self.port, "/readyz")[0] == 200 and len(self.workers()) >= 1,
                   "become ready", timeout)
        self._start_sampling()

    def workers(self) -> list[int]:
        return _children(self.process.pid) if self.process else []

    def helpers(self) -> list[int]:
        """The workers' batch helper processes (registry/runtime/batches.py)."""
        return [helper for pid in self.workers() for helper in _children(pid)]

    def _start_sampling(self) -> None:
        self._sampling.set()

        def sample() -> None:
            while self._sampling.is_set():
                self.sample_memory()
                time.sleep(0.2)

        self._sampler = threading.Thread(target=sample, daemon=True)
        self._sampler.start()

    def sample_memory(self) -> None:
        for pid in self.workers():
            _sample(self.peaks, pid)
        for helper in self.helpers():
            _sample(self.helper_peaks, helper)

    def stop(self) -> None:
        self._sampling.clear()
        if self._sampler is not None:
            self._sampler.join(timeout=5)
        super().stop()


class HAProxy(_Server):
    """HAProxy with deploy/'s configuration, in front of the instances."""

    name = "HAProxy"

    def __init__(self, instances: list[str], port: int, folder: Path, maxconn: int):
        super().__init__(folder / "haproxy.log")
        self.instances = instances
        self.port = port
        self.maxconn = maxconn
        self.admin_socket = folder / "haproxy.sock"
        self.config = folder / "haproxy.cfg"

    def start(self, timeout: float = 60) -> None:
        binary = haproxy.binary()
        if binary is None:
            raise ServerError("HAProxy is not installed (Debian package haproxy; `make bench` installs it)")
        self.config.write_text(haproxy.render(self.instances, binds=[f"127.0.0.1:{self.port}"],
                                              maxconn=self.maxconn, admin_socket=str(self.admin_socket)))
        self._launch([binary, "-db", "-f", str(self.config)])
        # Every instance is ready already; HAProxy knows once its health check said so.
        self._wait(lambda: all(row["check_status"] == "L7OK" for row in haproxy.instances(self.admin_socket).values()),
                   "see every instance ready", timeout)

    def requests(self) -> dict[str, int]:
        """How many requests HAProxy has sent to each instance so far, by address."""
        return {name: int(row["stot"]) for name, row in haproxy.instances(self.admin_socket).items()}


class Site:
    """What wrk drives: ``instances`` registry instances, each a gunicorn master, behind HAProxy.

    Started and stopped as one; ``stop`` stops whatever started, also after
    a failed ``start``.
    """

    def __init__(self, root: Path, env: dict[str, str], ports: list[int], folder: Path, maxconn: int):
        self.port = ports[0]  # HAProxy's, the one clients use
        self.instances = [Gunicorn(root, env, port, folder / f"gunicorn-{port}.log") for port in ports[1:]]
        self.proxy = HAProxy([f"127.0.0.1:{i.port}" for i in self.instances], self.port, folder, maxconn)

    def start(self) -> None:
        for instance in self.instances:
            instance.start()
        self.proxy.start()

    def workers(self) -> list[int]:
        return [pid for instance in self.instances for pid in instance.workers()]

    def helpers(self) -> list[int]:
        return [pid for instance in self.instances for pid in instance.helpers()]

    def proxy_pids(self) -> list[int]:
        return [self.proxy.process.pid] if self.proxy.alive() else []

    def per_instance(self) -> dict[str, int]:
        return self.proxy.requests()

    def memory(self) -> dict:
        for instance in self.instances:
            instance.sample_memory()
        return _memory({pid: p for i in self.instances for pid, p in i.peaks.items()},
                       {pid: p for i in self.instances for pid, p in i.helper_peaks.items()})

    def alive(self) -> bool:
        return self.proxy.alive() and all(instance.alive() for instance in self.instances)

    def stop(self) -> None:
        errors = []
        for server in (self.proxy, *self.instances):
            try:
                server.stop()
            except Exception as exc:  # stop the others all the same
                errors.append(exc)
        if errors:
            raise errors[0]

    # --- plain HTTP for single timed requests, through the proxy -----------------

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        return _get("127.0.0.1", self.port, path, headers)


def _get(host: str, port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def request(connection: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str],
            body: object | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    all_headers = {**headers, **({"Content-Type": "application/json"} if data is not None else {})}
    connection.request(method, path, body=data, headers=all_headers)
    response = connection.getresponse()
    return response.status, response.read()
