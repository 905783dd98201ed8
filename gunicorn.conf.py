"""gunicorn settings recommended for production (and used by `make serve` and the benchmark).

Two workers of four threads suit a 2-core machine: verification is short and
CPU-bound (a lookup and an Ed25519 signature), and threads overlap database
waits. Override with GUNICORN_CMD_ARGS, e.g. "--workers 4". Behind the
reverse proxy (deploy/README.md), run one instance of REGISTRY_WORKERS=1 per core.
"""

import os

workers = int(os.environ.get("REGISTRY_WORKERS", "2"))
threads = int(os.environ.get("REGISTRY_THREADS", "4"))
worker_class = "gthread"
bind = os.environ.get("REGISTRY_BIND", "127.0.0.1:8000")
timeout = 60
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so that no slow leak builds up; rarely, since
# a restart costs its worker a second and its warm caches (at the 2,000-4,000
# requests a second this machine serves, 100,000 meant every half minute).
max_requests = 1_000_000
max_requests_jitter = 100_000
# The workers share the master's socket and the kernel decides which takes a
# new connection, so a few long-lived ones may gather on one worker. Spreading
# them is the reverse proxy's job (least connections over instances of one
# worker each, deploy/README.md). on_starting keeps "address in use" a clear error.
accesslog = "-" if os.environ.get("REGISTRY_ACCESS_LOG", "") else None
errorlog = "-"
# Neither the request line nor headers carry tokens in logs: only the path is logged.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'


def post_worker_init(worker):
    """Once a worker has loaded the app: freeze what it loaded for the garbage
    collector and start its batch helper, a process that answers half of each
    large verify batch on the other core (registry/runtime/batches.py)."""
    from registry.runtime import Runtime

    Runtime.of(worker.wsgi).start_worker()


def on_starting(server):
    """Refuse a TCP address already in use at once, saying so.

    gunicorn would try again for five seconds and then say only that it
    cannot connect; with reuse_port (GUNICORN_CMD_ARGS) a second server on
    the same port would share its connections silently. The probe sets
    SO_REUSEADDR, as gunicorn's own sockets do, so that connections left in
    TIME_WAIT by a server that just stopped do not count as a use.
    """
    import socket

    for address in server.cfg.address:
        if not isinstance(address, tuple):
            continue
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address[:2])
            except OSError as exc:
                raise SystemExit(f"cannot listen on {address[0]}:{address[1]}: {exc.strerror}") from None
