"""gunicorn settings recommended for production (and used by `make serve` and the benchmark).

Two workers of four threads suit a 2-core machine: verification is short and
CPU-bound (a lookup and an Ed25519 signature), and threads overlap database
waits. Override with GUNICORN_CMD_ARGS, e.g. "--workers 4".
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
accesslog = "-" if os.environ.get("REGISTRY_ACCESS_LOG", "") else None
errorlog = "-"
# Neither the request line nor headers carry tokens in logs: only the path is logged.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'


def post_worker_init(worker):
    """Tune the garbage collector of each worker once the app is loaded.

    A verify batch allocates a few hundred thousand short-lived objects; with
    CPython's default threshold (700) that set off hundreds of young-generation
    and several full collections per batch, about a third of its time. The
    app's long-lived objects (modules, routes, schemas) are frozen so full
    collections skip them, and young collections run every 50,000 allocations
    (the older generations keep their default ratios).
    """
    import gc

    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(50_000, older, oldest)
