"""The registry's benchmark: ``make bench`` (or ``python -m bench.run``); see bench/README.md.

Per backend (SQLite, PostgreSQL): a fresh database and keys; ``registry demo``
(parties with hosted keys, agreements, tokens); N licences through the real
bulk path (``registry import``, one CSV per party); then two registry
instances (gunicorn masters with the project's gunicorn.conf.py, one worker
each, production mode) behind HAProxy with deploy/'s configuration, driven
through the proxy by wrk (/healthz and /verify alternating, 16 connections);
verify batches and log proofs over HTTP; peak memory per worker; and
``registry audit`` over the whole log. Peers (bench/README.md) run beside it.
Figures go to bench/results/ as JSON and Markdown.

Everything it starts (servers, databases) is stopped and dropped on the way
out, also on errors and on Ctrl-C; any error fails the run with a non-zero exit.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploy import haproxy

from . import cpu, datagen, peers, report, wrk
from .server import Site, disk_read_bytes, request

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "results"
WARM_UP_ASKS = 5  # /verify warm-up requests, in multiples of the id pool's size
WARM_UP_ROUNDS = 10  # the most wrk rounds the /verify warm-up may take
SERVER_SHAPE = ("REGISTRY_WORKERS", "REGISTRY_THREADS", "REGISTRY_BATCH_HELPER", "REGISTRY_BATCH_SPLIT_MIN")
KEPT = "database-url.txt"  # where --keep leaves the kept database's URL, for --reuse and bench.micro
POSTGRES_ADMIN = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
PORTS = range(5200, 5300)


class BenchError(RuntimeError):
    """A step failed; the run stops and says which."""


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", flush=True)


# --- the machine ------------------------------------------------------------------


def _postgres_version() -> str:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN) as connection:
        return connection.execute("SHOW server_version").fetchone()[0]


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    meminfo = Path("/proc/meminfo").read_text()
    total_kb = int(re.search(r"MemTotal:\s*(\d+)", meminfo).group(1))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip() or os.environ.get("BENCH_COMMIT", "unknown")
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "registry"], cwd=ROOT, capture_output=True,
                           text=True, check=False).stdout.strip()
    try:
        postgres = _postgres_version()
    except Exception as exc:  # reported, not fatal: a SQLite-only run needs no server
        postgres = f"unavailable ({type(exc).__name__})"
    return {
        "cpu": model.group(1).strip() if model else platform.processor(),
        "cores": os.cpu_count(),
        "ram_gib": round(total_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres,
        "wrk": _wrk_version(),
        "haproxy": _haproxy_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "commit": commit + ("+dirty" if dirty else ""),
    }


def _wrk_version() -> str:
    binary = shutil.which("wrk")
    if not binary:
        return "missing"
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).split("\n")[0].strip()


def _haproxy_version() -> str:
    binary = haproxy.binary()
    if not binary:
        return "missing"
    return subprocess.run([binary, "-v"], capture_output=True, text=True, check=False).stdout.split(" - ")[0].strip()


def free_ports(count: int) -> list[int]:
    """``count`` ports free now in 5200-5299: each probe holds its port until all are found."""
    probes: list[socket.socket] = []
    try:
        for port in PORTS:
            probe = socket.socket()
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                probe.close()
                continue
            probes.append(probe)
            if len(probes) == count:
                return [probe.getsockname()[1] for probe in probes]
        raise BenchError(f"fewer than {count} free ports in 5200-5299")
    finally:
        for probe in probes:
            probe.close()


# --- databases --------------------------------------------------------------------------


class Database:
    """A database made for this run and dropped after it."""

    def __init__(self, backend: str, folder: Path):
        self.backend = backend
        self.folder = folder
        self.name = f"aeo_bench_{uuid.uuid4().hex[:8]}"
        if backend == "sqlite":
            self.url = f"sqlite:///{folder / 'registry.sqlite3'}"
        else:
            self.url = POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{self.name}"

    def create(self) -> None:
        if self.backend == "postgresql":
            self._admin(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        if self.backend == "postgresql":
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
            connection.execute(statement)


# --- one backend ------------------------------------------------------------------------------


class BackendRun:
    def __init__(self, backend: str, args: argparse.Namespace, register: datagen.Register, cleanups: list):
        self.backend = backend
        self.args = args
        self.register = register
        self.folder = WORK / backend
        if not args.reuse:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
        self.database = Database(backend, self.folder)
        if args.reuse:
            if not (self.folder / KEPT).exists():
                raise BenchError(f"--reuse: nothing kept in {self.folder}; build with --keep first")
            self.database.url = (self.folder / KEPT).read_text().strip()
        self.env = {
            # The registry's settings are the bench's, except the server's shape, which a run may vary.
            **{k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_") or k in SERVER_SHAPE},
            "REGISTRY_DATABASE_URL": self.database.url,
            "REGISTRY_KEYS_DIR": str(self.folder / "keys"),
            "REGISTRY_LOG_ORIGIN": "aeo-registry.bench/log",
            "REGISTRY_SECRET_KEY": secrets.token_urlsafe(48),
            "REGISTRY_LOG_LEVEL": "WARNING",
            # Each instance is one worker behind the proxy, which it trusts for the client's address.
            "REGISTRY_WORKERS": os.environ.get("REGISTRY_WORKERS", "1"),
            "REGISTRY_PROXY_HOPS": "1",
        }
        self.rng = random.Random(f"{args.seed}-{backend}")
        self.server: Site | None = None
        self.cleanups = cleanups
        self.figures: dict[str, Any] = {"backend": backend}

    def flask(self, *args: str, env: str = "production", profile: str | None = None) -> tuple[str, float]:
        command = [str(ROOT / ".venv/bin/flask"), "--app", "wsgi", "registry", *args]
        if profile and self.args.profile:
            out = self.folder / f"profile-{profile}.speedscope.json"
            command = [str(ROOT / ".venv/bin/py-spy"), "record", "--nonblocking", "--format", "speedscope",
                       "--rate", "50", "-o", str(out), "--", *command]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env={**self.env, "REGISTRY_ENV": env}, capture_output=True,
                              text=True, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise BenchError(f"`registry {' '.join(args)}` failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout, elapsed

    def run(self) -> dict[str, Any]:
        if self.args.reuse:
            self.reuse()
        else:
            self.database.create()
            if self.args.keep:
                log(f"{self.backend}: keeping the database {self.database.url} (--keep)")
                (self.folder / KEPT).write_text(self.database.url + "\n")
            else:
                self.cleanups.append(self.database.drop)
            self.build()
        if not self.args.build_only:
            self.serve()
            if not self.args.no_audit:
                self.audit()
        return self.figures

    # --- building the registry -----------------------------------------------------

    def reuse(self) -> None:
        """Serve what an earlier ``--keep`` run built (for profiling between full runs)."""
        self.tokens = json.loads((self.folder / "tokens.json").read_text())
        log(f"{self.backend}: reusing {self.database.url}")

    def build(self) -> None:
        tokens_file = self.folder / "tokens.json"
        self.flask("demo", "--tokens-file", str(tokens_file), env="development")
        self.tokens = json.loads(tokens_file.read_text())
        log(f"{self.backend}: publishing {self.register.total:,} licences with `registry import`")
        seconds = 0.0
        per_party = {}
        for party, path in self.register.files.items():
            out, elapsed = self.flask("import", party, str(path), profile=f"import-{party}" if party == "RS" else None)
            published = int(re.search(r"(\d+) licence versions published", out).group(1))
            if published != self.register.counts[party]:
                raise BenchError(f"{party}: {published} published, {self.register.counts[party]} expected")
            per_party[party] = round(published / elapsed)
            seconds += elapsed
            log(f"{self.backend}: {party} {published:,} in {elapsed:.1f} s ({published / elapsed:,.0f}/s)")
        self.figures["publish"] = {
            "licences": self.register.total,
            "seconds": round(seconds, 1),
            "licences_per_second": round(self.register.total / seconds),
            "per_party_licences_per_second": per_party,
            "chunk": 10_000,
        }
        if self.backend == "postgresql":
            # What a DBA does after a bulk load (autovacuum gets there on its own
            # later): fresh planner statistics, and a visibility map that lets
            # index-only scans skip the table.
            import psycopg

            with psycopg.connect(self.database.url, autocommit=True) as connection:
                connection.execute("VACUUM (ANALYZE)")

    # --- serving -----------------------------------------------------------------------

    def serve(self) -> None:
        ports = free_ports(1 + self.args.instances)
        self.server = Site(ROOT, {**self.env, "REGISTRY_ENV": "production"}, ports, self.folder,
                           maxconn=int(os.environ.get("BENCH_PROXY_MAXCONN") or self.env["REGISTRY_WORKERS"]))
        self.cleanups.append(self.server.stop)
        self.server.start()
        port = self.server.port
        log(f"{self.backend}: HAProxy on port {port} (pid {self.server.proxy.process.pid}) in front of "
            f"gunicorn on {', '.join(str(i.port) for i in self.server.instances)}, workers {self.server.workers()}")
        status, body = self.server.get("/api/v1/log")
        if status != 200:
            raise BenchError(f"/api/v1/log answered {status}")
        info = json.loads(body)
        self.figures["tree_size"] = info["tree_size"]
        self.figures["root_hash"] = info["root_hash"]
        token = self.tokens["AL"]["customs"]
        self.headers = {"Authorization": f"Bearer {token}"}
        self.check_answers()
        self.load_test(token, port)
        self.batches()
        self.proofs(info["tree_size"])
        self.figures["memory"] = self.server.memory()
        self.evidence()
        if not self.server.alive():
            raise BenchError("HAProxy or a gunicorn master died during the run")
        self.server.stop()

    def check_answers(self) -> None:
        """Before timing anything: the server answers verifications correctly."""
        for operator_id in self.register.known_ids[:5] + self.register.unknown_ids[:2]:
            status, body = self.server.get(f"/api/v1/verify/{operator_id}", self.headers)
            if status != 200:
                raise BenchError(f"verify {operator_id} answered {status}: {body[:500]!r}")
            result = json.loads(body)["verification"]["results"][0]
            expected_unknown = operator_id in self.register.unknown_ids
            if (result["reason"] == "unknown_operator") != expected_unknown:
                raise BenchError(f"verify {operator_id} answered {result['reason']}")

    def load_test(self, token: str, port: int) -> None:
        url = f"http://127.0.0.1:{port}"
        ids = datagen.sample(self.register, 20_000, 0.10, self.rng)
        scripts = {
            "healthz": wrk.write_script(self.folder / "healthz.lua", ["/healthz"], token),
            "verify": wrk.write_script(self.folder / "verify.lua", [f"/api/v1/verify/{i}" for i in ids], token),
        }
        seconds = self.args.wrk_seconds
        # Warm-up, so that the rounds measure the steady state a long-running
        # server is in (connections, page cache, each worker's caches): one
        # round's length of /healthz, and /verify until it has been asked
        # WARM_UP_ASKS times the pool's size (a round at a time, at most
        # WARM_UP_ROUNDS): random requests over the pool then ask each of
        # two workers about 90% of its ids, which the verification cache
        # (registry/runtime/verify_cache.py) keeps; what it still misses shows as CPU in the
        # database server per verification. Counted in requests, not
        # seconds: on a host at half speed three rounds asked each worker
        # about two in three ids, and a third of the verifications missed.
        wrk.run(url, scripts["healthz"], seconds=seconds)
        asked = 0
        for _ in range(WARM_UP_ROUNDS):
            asked += wrk.run(url, scripts["verify"], seconds=seconds).requests
            if asked >= WARM_UP_ASKS * len(ids):
                break
        rounds: dict[str, list[wrk.Figures]] = {"healthz": [], "verify": []}
        meter = cpu.Meter(lambda: {"workers": self.server.workers(), "helpers": self.server.helpers(),
                                   "proxy": self.server.proxy_pids(), "database": cpu.database_pids()})
        for number in range(self.args.rounds):
            for name, script in scripts.items():
                spies = self._profile_server(seconds) if self.args.profile and name == "verify" and number == 0 \
                    else []
                before = self.server.per_instance()
                meter.start()
                figures = wrk.run(url, script, seconds=seconds)
                figures.cpu = meter.stop(figures.requests)
                after = self.server.per_instance()
                figures.per_instance = [after[instance] - before.get(instance, 0) for instance in sorted(after)]
                for spy in spies:
                    spy.wait(timeout=60)
                log(f"{self.backend}: {name} round {number + 1}: {figures.rps:,.0f} req/s, "
                    f"p50 {figures.p50_ms} ms, p99 {figures.p99_ms} ms, non-2xx {figures.non_2xx}, "
                    f"requests per instance {figures.per_instance}, CPU µs per request {figures.cpu}")
                rounds[name].append(figures)
                if figures.non_2xx or figures.errors:
                    raise BenchError(f"{name}: {figures.non_2xx} non-2xx answers, {figures.errors} socket errors")
        self.figures["http"] = {name: _summary(figures) for name, figures in rounds.items()}
        self.figures["http"]["verify_over_healthz"] = round(
            self.figures["http"]["verify"]["rps"] / self.figures["http"]["healthz"]["rps"], 3)
        self.figures["http"]["verify_warm_up_requests"] = asked

    def _profile_server(self, seconds: int) -> list[subprocess.Popen]:
        """py-spy on each instance's master and its workers, a file per instance."""
        return [subprocess.Popen([str(ROOT / ".venv/bin/py-spy"), "record", "--pid", str(instance.process.pid),
                                  "--subprocesses", "--nonblocking", "--format", "speedscope", "--rate", "50",
                                  "--duration", str(seconds),
                                  "-o", str(self.folder / f"profile-verify-{instance.port}.speedscope.json")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for instance in self.server.instances]

    def batches(self) -> None:
        results = {}
        connection = self.server.connection()
        try:
            for size in (1000, 5000):
                timings, reads = [], []
                for attempt in range(self.args.batch_repeats + 1):
                    ids = datagen.sample(self.register, size, 0.10, self.rng)
                    read_before = disk_read_bytes()
                    start = time.perf_counter()
                    status, body = request(connection, "POST", "/api/v1/verify:batch", self.headers,
                                           {"operator_ids": ids, "nonce": f"bench-{attempt}"})
                    elapsed = (time.perf_counter() - start) * 1000
                    read_after = disk_read_bytes()
                    if status != 200:
                        raise BenchError(f"batch of {size} answered {status}: {body[:500]!r}")
                    if len(json.loads(body)["verification"]["results"]) != size:
                        raise BenchError(f"batch of {size}: wrong number of results")
                    if attempt:  # the first is a warm-up
                        timings.append(elapsed)
                        if read_before is not None and read_after is not None:
                            reads.append((read_after - read_before) / 1e6)
                results[str(size)] = _timings(timings)
                if reads:
                    results[str(size)]["disk_read_mb"] = round(statistics.median(reads), 1)
                log(f"{self.backend}: batch of {size}: median {results[str(size)]['median_ms']} ms, "
                    f"{results[str(size)].get('disk_read_mb', '?')} MB read from disk")
        finally:
            connection.close()
        self.figures["batch"] = results

    def proofs(self, size: int) -> None:
        connection = self.server.connection()
        timings: dict[str, list[float]] = {"inclusion": [], "consistency": []}
        read_before = disk_read_bytes()
        try:
            for attempt in range(self.args.proof_repeats + 1):
                index = self.rng.randrange(size)
                first = self.rng.randrange(1, size + 1)
                for name, path in (("inclusion", f"/api/v1/log/proof/inclusion?index={index}&tree_size={size}"),
                                   ("consistency", f"/api/v1/log/proof/consistency?first={first}&second={size}")):
                    start = time.perf_counter()
                    status, body = request(connection, "GET", path, {})
                    elapsed = (time.perf_counter() - start) * 1000
                    if status != 200:
                        raise BenchError(f"{path} answered {status}: {body[:300]!r}")
                    if attempt:
                        timings[name].append(elapsed)
        finally:
            connection.close()
        read_after = disk_read_bytes()
        self.figures["proofs"] = {name: _timings(values) for name, values in timings.items()}
        if read_before is not None and read_after is not None:
            pairs = self.args.proof_repeats + 1
            self.figures["proofs"]["disk_read_kb_per_pair"] = round((read_after - read_before) / 1e3 / pairs, 1)
        log(f"{self.backend}: proofs at size {size:,}: inclusion {self.figures['proofs']['inclusion']['median_ms']}"
            f" ms, consistency {self.figures['proofs']['consistency']['median_ms']} ms")

    # --- evidence ------------------------------------------------------------------------

    def evidence(self) -> None:
        """How long a partner takes to check the largest evidence the service makes, with the offline verifier.

        A 5,000-id answer with statements and proofs, checked against the
        registry's published keys; and a snapshot of one party's licences
        (MK's: a seventh of the register), fetched and then checked whole.
        """
        from registry import offline

        connection = self.server.connection()
        try:
            ids = datagen.sample(self.register, 5000, 0.0, self.rng)
            status, body = request(connection, "POST", "/api/v1/verify:batch", self.headers,
                                   {"operator_ids": ids, "include_statements": True, "proofs": True})
            if status != 200:
                raise BenchError(f"batch with proofs answered {status}: {body[:300]!r}")
            jwks = json.loads(self.server.get("/.well-known/jwks.json")[1])
            log_info = json.loads(self.server.get("/api/v1/log")[1])
            parties = json.loads(self.server.get("/api/v1/parties")[1])["items"]
            start = time.perf_counter()
            anchors = offline.Anchors.published(jwks, log_info["verifier_key"], parties)
            report = offline.check_answer(json.loads(body), anchors)
            answer_seconds = time.perf_counter() - start
            start = time.perf_counter()
            status, snapshot = request(connection, "GET", "/api/v1/snapshot?party=MK", self.headers)
            served_seconds = time.perf_counter() - start
            if status != 200:
                raise BenchError(f"snapshot answered {status}: {snapshot[:300]!r}")
            start = time.perf_counter()
            opened = offline.open_snapshot(json.loads(snapshot), jwks)
            snapshot_seconds = time.perf_counter() - start
        finally:
            connection.close()
        self.figures["evidence"] = {
            "answer_licences_proven": report.proven, "answer_mb": round(len(body) / 1e6, 1),
            "answer_check_seconds": round(answer_seconds, 2),
            "snapshot_licences": len({v.certificate for v in opened.licence_versions}),
            "snapshot_mb": round(len(snapshot) / 1e6, 1), "snapshot_served_seconds": round(served_seconds, 2),
            "snapshot_check_seconds": round(snapshot_seconds, 2),
        }
        log(f"{self.backend}: evidence: a 5,000-id answer with proofs ({self.figures['evidence']['answer_mb']} MB) "
            f"checked in {answer_seconds:.1f} s; a snapshot of "
            f"{self.figures['evidence']['snapshot_licences']:,} licences "
            f"({self.figures['evidence']['snapshot_mb']} MB) served in {served_seconds:.1f} s, checked in "
            f"{snapshot_seconds:.1f} s")

    # --- audit -----------------------------------------------------------------------------

    def audit(self) -> None:
        out, elapsed = self.flask("audit", profile="audit")
        if "all hold" not in out:
            raise BenchError(f"audit found faults: {out[-2000:]}")
        entries = int(re.search(r"(\d+) entries", out).group(1))
        self.figures["audit"] = {"entries": entries, "seconds": round(elapsed, 1),
                                 "entries_per_second": round(entries / elapsed)}
        log(f"{self.backend}: audit of {entries:,} entries in {elapsed:.1f} s")

    def leaves(self):
        """The logged leaves in order, for the pymerkle peer."""
        from sqlalchemy import create_engine, text

        from registry.config import database_url

        engine = create_engine(database_url(self.database.url))
        try:
            with engine.connect() as connection:
                result = connection.execution_options(stream_results=True, yield_per=10_000).execute(
                    text("SELECT leaf FROM log_entry ORDER BY idx"))
                for (leaf,) in result:
                    yield leaf.encode()
        finally:
            engine.dispose()


def _timings(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median_ms": round(statistics.median(ordered), 2), "min_ms": round(ordered[0], 2),
            "max_ms": round(ordered[-1], 2), "samples": len(ordered)}


def _summary(rounds: list[wrk.Figures]) -> dict[str, Any]:
    """The median round by throughput stands for the run; every round is kept."""
    return {
        "rps": round(statistics.median(f.rps for f in rounds), 1),
        "p50_ms": round(statistics.median(f.p50_ms for f in rounds), 2),
        "p99_ms": round(statistics.median(f.p99_ms for f in rounds), 2),
        "cpu": {kind: statistics.median(f.cpu[kind] for f in rounds) for kind in rounds[0].cpu}
        if rounds[0].cpu else None,
        "rounds": [f.as_json() for f in rounds],
    }


# --- the whole run -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=int(os.environ.get("BENCH_N", "100000")),
                        help="licences to publish (default 100000; BENCH_N)")
    parser.add_argument("--backends", default=os.environ.get("BENCH_BACKENDS", "sqlite postgresql"),
                        help="space-separated: sqlite postgresql")
    parser.add_argument("--wrk-seconds", type=int, default=int(os.environ.get("BENCH_WRK_SECONDS", "15")))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")),
                        help="alternating healthz/verify wrk rounds")
    parser.add_argument("--instances", type=int, default=int(os.environ.get("BENCH_INSTANCES", "2")),
                        help="registry instances (gunicorn masters) behind HAProxy (default 2; BENCH_INSTANCES)")
    parser.add_argument("--batch-repeats", type=int, default=5)
    parser.add_argument("--proof-repeats", type=int, default=50)
    parser.add_argument("--seed", type=int, default=9162)
    parser.add_argument("--profile", action="store_true", default=os.environ.get("BENCH_PROFILE") == "1",
                        help="record py-spy profiles (speedscope JSON) of import, verify and audit in bench/work/")
    parser.add_argument("--keep", action="store_true", help="keep the databases (for bench.micro)")
    parser.add_argument("--build-only", action="store_true", help="only build the registries (with --keep)")
    parser.add_argument("--reuse", action="store_true",
                        help="serve the registries a --keep run left (same --n and --seed); results not written")
    parser.add_argument("--no-audit", action="store_true", help="skip the audit (with --reuse)")
    parser.add_argument("--no-peers", action="store_true", help="skip pymerkle and Ed25519 peers")
    parser.add_argument("--label", default=os.environ.get("BENCH_LABEL", ""), help="a note on the conditions")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backends = args.backends.split()
    if not backends or set(backends) - {"sqlite", "postgresql"}:
        raise SystemExit("--backends takes sqlite and/or postgresql")
    cleanups: list = []

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    started = datetime.now(UTC)
    results: dict[str, Any] = {"n": args.n, "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                               "command": _command(args), "label": args.label, "machine": machine(),
                               "settings": {"wrk_seconds": args.wrk_seconds, "rounds": args.rounds,
                                            "connections": 16, "wrk_threads": 2, "unknown_share": 0.10,
                                            "proxy": "HAProxy, deploy/haproxy.cfg.in",
                                            "instances": args.instances,
                                            "workers": int(os.environ.get("REGISTRY_WORKERS", "1")),
                                            "threads": int(os.environ.get("REGISTRY_THREADS", "4")),
                                            "batch_helper": os.environ.get("REGISTRY_BATCH_HELPER", "true")},
                               "backends": {}}
    try:
        shutil.rmtree(WORK / "data", ignore_errors=True)
        log(f"generating {args.n:,} licences")
        register = datagen.generate(args.n, WORK / "data", started.date(), args.seed)
        if not args.no_peers:
            results["peers"] = {"ed25519": peers.ed25519_sign()}
            log(f"peer: Ed25519 sign {results['peers']['ed25519']['sign_us']} µs")
        for backend in backends:
            run = BackendRun(backend, args, register, cleanups)
            results["backends"][backend] = run.run()
            if not args.no_peers and not args.build_only and "pymerkle" not in results.get("peers", {}):
                log("peer: pymerkle SqliteTree with the same leaves")
                size = run.figures["tree_size"]
                figures = peers.pymerkle_tree(run.leaves(), size, WORK / "pymerkle", run.rng)
                import base64

                figures["same_root"] = base64.b64decode(run.figures["root_hash"]).hex() == figures["root_hex"]
                if not figures["same_root"]:
                    raise BenchError("pymerkle's root differs from the registry's checkpoint")
                figures["leaves_from"] = backend
                results["peers"]["pymerkle"] = figures
            _run_cleanups(cleanups)
    except (BenchError, wrk.WrkError, KeyboardInterrupt, OSError, http.client.HTTPException) as exc:
        _run_cleanups(cleanups)
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        _run_cleanups(cleanups)
    results["seconds"] = round((datetime.now(UTC) - started).total_seconds())
    if args.build_only:
        return 0
    if args.reuse:
        print(json.dumps(results["backends"], indent=1))
        return 0
    paths = report.write(results, RESULTS)
    print(paths["markdown"].read_text())
    log(f"results written to {', '.join(str(p.relative_to(ROOT)) for p in paths.values())}")
    return 0


def _command(args: argparse.Namespace) -> str:
    parts = ["make bench", f"BENCH_N={args.n}"]
    if args.backends != "sqlite postgresql":
        parts.append(f'BENCH_BACKENDS="{args.backends}"')
    return " ".join(parts)


def _run_cleanups(cleanups: list) -> None:
    while cleanups:
        cleanup = cleanups.pop()
        try:
            cleanup()
        except Exception as exc:  # keep cleaning up; say what was left behind
            print(f"bench cleanup failed: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
