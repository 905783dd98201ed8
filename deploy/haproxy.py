"""Write an HAProxy configuration for registry instances: ``python -m deploy.haproxy --help``.

deploy/haproxy.cfg.in holds the configuration; this fills in what differs
between deployments (the instances, the addresses to listen on, TLS, where
to log), so that ``make bench``, the tests and an operator write it alike.
See deploy/README.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

TEMPLATE = Path(__file__).with_name("haproxy.cfg.in")
BACKEND = "registry"  # the backend's name, as the stats (and `show stat`) call it
# Debian 12's TLS defaults for HAProxy (its /etc/haproxy/haproxy.cfg): Mozilla's intermediate profile.
TLS_DEFAULTS = (
    "ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384",
    "ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
    "ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets",
)
INDENT = "    "
# With --log only (HAProxy warns of a format for no log). Neither headers (a token is
# in Authorization) nor query strings are logged: the method and path, as in gunicorn's access log.
LOGGING = ("log global", "option dontlognull",
           'log-format "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %HM %HPO"')


def binary() -> str | None:
    """Where HAProxy is installed, or None: Debian puts it in /usr/sbin, which a user's PATH may lack."""
    return shutil.which("haproxy", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def render(instances: Sequence[str], *, binds: Sequence[str] = (), tls_binds: Sequence[str] = (),
           cert: str | None = None, maxconn: int = 1, threads: int = 1, stats: str | None = None,
           admin_socket: str | None = None, log: str | None = None, user: str | None = None,
           chroot: str | None = None) -> str:
    """The configuration's text. ``instances`` are HOST:PORT of gunicorn masters; ``binds`` plain HTTP
    addresses, ``tls_binds`` HTTPS ones (with ``cert``, a PEM of certificate chain and key); ``maxconn``
    requests at once per instance (its workers); ``threads`` HAProxy's own."""
    if not instances:
        raise ValueError("at least one instance")
    if not binds and not tls_binds:
        raise ValueError("at least one address to listen on")
    if tls_binds and not cert:
        raise ValueError("an HTTPS address needs a certificate")
    if maxconn < 1 or threads < 1:
        raise ValueError("maxconn and threads must be at least 1")
    global_lines = []
    if user:
        global_lines += [f"user {user}", f"group {user}"]
    if chroot:
        global_lines.append(f"chroot {chroot}")
    if log:
        # stdout and stderr take no syslog header; a socket or host takes one.
        global_lines.append(f"log {log} format raw local0" if log in ("stdout", "stderr") else f"log {log} local0")
    if admin_socket:
        global_lines.append(f"stats socket {admin_socket} mode 600 level admin")
    if tls_binds:
        global_lines += TLS_DEFAULTS
    bind_lines = [f"bind {address}" for address in binds]
    bind_lines += [f"bind {address} ssl crt {cert} alpn h2,http/1.1" for address in tls_binds]
    redirect = []
    if tls_binds and binds:
        # 308 keeps the method and body, so an API client's POST is not turned into a GET.
        redirect = ["http-request redirect scheme https code 308 unless { ssl_fc }"]
    # Named by address, so that the stats and logs say where to look.
    servers = [f"server {address} {address}" for address in instances]
    stats_lines = []
    if stats:
        stats_lines = ["", "# HAProxy's own page (each instance up or down, its requests, the queue), Prometheus",
                       "# metrics, and whether any instance is up, for whatever watches the proxy.",
                       "frontend stats", *_indented([
                           f"bind {stats}", "monitor-uri /health",
                           f"monitor fail if {{ nbsrv({BACKEND}) lt 1 }}",
                           "http-request set-log-level silent", "stats enable", "stats uri /stats",
                           "stats refresh 10s",
                           "http-request use-service prometheus-exporter if { path /metrics }"])]
    lines = {
        "GLOBAL": _indented(global_lines),
        "LOGGING": _indented(list(LOGGING) if log else []),
        "BINDS": _indented(bind_lines),
        "REDIRECT": _indented(redirect),
        "SERVERS": _indented(servers),
        "STATS": stats_lines,
    }
    # A placeholder stands on a line of its own, which goes when it is left empty.
    text = re.sub(r"^@([A-Z]+)@\n", lambda match: "".join(line + "\n" for line in lines[match.group(1)]),
                  TEMPLATE.read_text(), flags=re.MULTILINE)
    return text.replace("@MAXCONN@", str(maxconn)).replace("@THREADS@", str(threads))


def _indented(lines: list[str]) -> list[str]:
    return [INDENT + line for line in lines]


def instances(admin_socket: str | Path, timeout: float = 10) -> dict[str, dict[str, str]]:
    """Each instance's row of HAProxy's statistics (``show stat`` on the runtime API), by name:
    ``status`` (UP, DOWN, ...), ``stot`` (requests it was given), ``scur`` (running now), and the rest."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        connection.connect(str(admin_socket))
        connection.sendall(b"show stat\n")
        answer = b""
        while chunk := connection.recv(65536):  # HAProxy closes after one command
            answer += chunk
    rows = csv.DictReader(answer.decode().removeprefix("# ").splitlines())
    return {row["svname"]: row for row in rows if row["pxname"] == BACKEND and row["type"] == "2"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m deploy.haproxy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--instance", action="append", required=True, metavar="HOST:PORT",
                        help="a registry instance (a gunicorn master); repeat for each")
    parser.add_argument("--bind", action="append", default=[], metavar="ADDRESS",
                        help="where to take plain HTTP, e.g. :80 or 127.0.0.1:8000; repeat for more")
    parser.add_argument("--tls-bind", action="append", default=[], metavar="ADDRESS",
                        help="where to take HTTPS, e.g. :443 (needs --cert); plain HTTP is then redirected to it")
    parser.add_argument("--cert", metavar="PEM", help="certificate chain and private key in one PEM file")
    parser.add_argument("--maxconn", type=int, default=1,
                        help="requests at once per instance: its REGISTRY_WORKERS (default 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="HAProxy's threads (default 1, for a machine it shares with the instances)")
    parser.add_argument("--stats", metavar="ADDRESS",
                        help="a local address for /stats, /metrics and /health, e.g. 127.0.0.1:8404")
    parser.add_argument("--admin-socket", metavar="PATH", help="HAProxy's runtime API (`show stat`, drain)")
    parser.add_argument("--log", metavar="TARGET", help="/dev/log, stdout, or HOST:PORT of a syslog server")
    parser.add_argument("--user", help="drop to this user and its group once listening (HAProxy started as root)")
    parser.add_argument("--chroot", metavar="DIR", help="confine HAProxy to DIR once listening")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of to standard output")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        text = render(args.instance, binds=args.bind, tls_binds=args.tls_bind, cert=args.cert,
                      maxconn=args.maxconn, threads=args.threads, stats=args.stats,
                      admin_socket=args.admin_socket, log=args.log, user=args.user, chroot=args.chroot)
    except ValueError as exc:
        print(f"deploy.haproxy: {exc}", file=sys.stderr)
        return 2
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
