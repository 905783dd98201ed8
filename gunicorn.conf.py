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
# Recycle workers now and then so that no slow leak builds up.
max_requests = 100_000
max_requests_jitter = 10_000
accesslog = "-" if os.environ.get("REGISTRY_ACCESS_LOG", "") else None
errorlog = "-"
# Neither the request line nor headers carry tokens in logs: only the path is logged.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'
