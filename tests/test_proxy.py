"""The reverse proxy shipped in deploy/: HAProxy's configuration as deploy/haproxy.py writes it.

Needs Debian's haproxy (``make proxy-deps``); skipped without it, except in
CI (CI=true), where a missing HAProxy fails the run instead of hiding it.
"""

from __future__ import annotations

import http.client
import os
import shutil
import ssl
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from deploy import haproxy

from .servers import READY_SECONDS, Gunicorn, HAProxy, cli, free_port, registry_env

HAPROXY = haproxy.binary()
if HAPROXY is None and os.environ.get("CI") != "true":
    pytestmark = pytest.mark.skip(reason="HAProxy is not installed (Debian package haproxy; make proxy-deps)")


def _trusting_any() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _self_signed(folder: Path) -> Path:
    """A certificate for 127.0.0.1 and its key in one PEM file, as HAProxy's ``crt`` takes them."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry.test")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
                   .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    path = folder / "registry.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


def _check(text: str, folder: Path) -> subprocess.CompletedProcess:
    path = folder / "haproxy.cfg"
    path.write_text(text)
    assert HAPROXY is not None, "HAProxy is not installed (Debian package haproxy; make proxy-deps)"
    return subprocess.run([HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("instances", "options"), [
    pytest.param(["127.0.0.1:8001"], {"binds": ["127.0.0.1:8000"]}, id="one instance, plain HTTP"),
    # deploy/README.md's production example: TLS, plain HTTP redirected, stats, runtime API, syslog, dropped rights.
    pytest.param(["10.0.0.1:8001", "10.0.0.1:8002", "10.0.0.2:8001"],
                 {"binds": [":80"], "tls_binds": [":443"], "stats": "127.0.0.1:8404", "log": "/dev/log",
                  "user": "haproxy", "chroot": "/var/lib/haproxy", "maxconn": 4}, id="production"),
])
def test_the_written_configuration_is_valid(instances, options, tmp_path):
    if options.get("tls_binds"):
        options = {**options, "cert": str(_self_signed(tmp_path)), "admin_socket": str(tmp_path / "admin.sock")}
    text = haproxy.render(instances, **options)
    checked = _check(text, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # A warning is a line HAProxy reads otherwise than it is written (a rule out of order, a format never used).
    assert "WARNING" not in checked.stdout + checked.stderr, checked.stdout + checked.stderr
    for instance in instances:
        assert f"server {instance} {instance}\n" in text


def test_a_broken_configuration_is_refused(tmp_path):
    # The check above can fail: HAProxy reads the file, it does not just start.
    text = haproxy.render(["127.0.0.1:8001"], binds=["127.0.0.1:8000"]).replace("balance leastconn", "balance fewest")
    assert _check(text, tmp_path).returncode != 0


def _wait_for(condition, what: str):
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)  # HAProxy checks each instance every 2 s
    raise AssertionError(f"not within {READY_SECONDS} s: {what}")


def _get(proxy: HAProxy, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    if proxy.cert:
        connection = http.client.HTTPSConnection("127.0.0.1", proxy.port, timeout=60,
                                                 context=_trusting_any())  # our own certificate
    else:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


def _served(proxy: HAProxy) -> Counter:
    return Counter({name: int(row["stot"]) for name, row in proxy.stats().items()})


def test_requests_reach_every_ready_instance_and_only_those(database_url, keys_dir, tmp_path):
    env = registry_env(database_url, keys_dir, REGISTRY_PROXY_HOPS="1")
    cli(env, "init")
    # The second instance starts without the registry's keys, so its /readyz answers 503.
    late_keys = tmp_path / "late-keys"
    late_keys.mkdir(mode=0o700)  # a keys folder open to others is refused
    with Gunicorn(env, tmp_path / "first.log", workers=1, threads=2) as first, \
            Gunicorn({**env, "REGISTRY_KEYS_DIR": str(late_keys)}, tmp_path / "second.log", workers=1,
                     threads=2, up="/healthz") as second:
        ready, unready = f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"
        with HAProxy([ready, unready], tmp_path) as proxy:
            _wait_for(lambda: {n: r["status"] for n, r in proxy.stats().items()} == {ready: "UP", unready: "DOWN"},
                      "the instance whose /readyz answers 503 out")
            assert proxy.stats()[unready]["check_code"] == "503"
            before = _served(proxy)
            assert all(_get(proxy, "/healthz").status == 200 for _ in range(6))
            assert _served(proxy) - before == Counter({ready: 6})

            for key in keys_dir.iterdir():
                shutil.copy2(key, late_keys / key.name)
            _wait_for(lambda: proxy.stats()[unready]["status"] == "UP", "the instance back once /readyz says 200")
            before = _served(proxy)
            assert all(_get(proxy, "/healthz").status == 200 for _ in range(10))
            served = _served(proxy) - before
            assert served.total() == 10 and set(served) == {ready, unready}, served

            # The proxy sets X-Forwarded-Proto, which the instances trust: a client's own claim of HTTPS
            # over plain HTTP does not reach them (else they would send HSTS over HTTP).
            spoofed = _get(proxy, "/healthz", {"X-Forwarded-Proto": "https"})
            assert spoofed.status == 200 and spoofed.getheader("Strict-Transport-Security") is None

        (tmp_path / "tls").mkdir()
        with HAProxy([ready, unready], tmp_path / "tls", cert=_self_signed(tmp_path)) as tls:
            _wait_for(lambda: all(r["status"] == "UP" for r in tls.stats().values()), "both instances up")
            answer = _get(tls, "/healthz")
            assert answer.status == 200 and answer.getheader("Strict-Transport-Security") == "max-age=31536000"


class _Failing(BaseHTTPRequestHandler):
    """An instance that is ready but fails every other request: 503, or closing without an answer."""

    def _answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/readyz":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.server.seen[f"{self.command} {self.path}"] += 1
        if self.server.failure == "503":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.close_connection = True  # the request was read; nothing comes back

    do_GET = do_PUT = do_POST = _answer  # noqa: N815 (http.server's names)

    def log_message(self, *args):
        pass


@pytest.fixture(params=["503", "empty"])
def failing(request):
    servers = []
    for _ in range(2):
        server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Failing)
        server.failure, server.seen = request.param, Counter()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("method", "path", "sent"), [
    ("GET", "/api/v1/verify/MK4000000001001", 3),
    ("PUT", "/api/v1/licences/MKAEOF001000", 3),
    ("POST", "/api/v1/verify:batch", 3),  # writes nothing
    ("POST", "/api/v1/licences:batch", 1),
    ("POST", "/api/v1/parties/MK/keys", 1),
])
def test_only_requests_that_mean_the_same_twice_are_sent_again(failing, method, path, sent, tmp_path):
    instances = [f"127.0.0.1:{server.server_port}" for server in failing]
    with HAProxy(instances, tmp_path) as proxy:
        _wait_for(lambda: all(r["status"] == "UP" for r in proxy.stats().values()), "both instances up")
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
        try:
            connection.request(method, path, body=b"{}", headers={"Content-Type": "application/json"})
            status = connection.getresponse().status
        finally:
            connection.close()
    assert status == (503 if failing[0].failure == "503" else 502)
    seen = sum((server.seen for server in failing), Counter())
    assert seen == Counter({f"{method} {path}": sent})
    if sent > 1:  # sent again to the other instance, not only the one that failed
        assert all(server.seen for server in failing)
