"""In-process timings of the hot paths, for profiling between full runs.

Uses a registry that ``python -m bench.run --keep`` left in bench/work/BACKEND
and times, in this one process with no HTTP server, what a request costs in
CPU: a single verification through the Flask test client, verify batches,
proofs, and one publish chunk. ``--profile`` writes pyinstrument HTML reports.

    .venv/bin/python -m bench.micro sqlite [--profile]
"""

from __future__ import annotations

import argparse
import json
import random
import runpy
import time
from pathlib import Path

from . import datagen

ROOT = Path(__file__).resolve().parent.parent


def _ids(folder: Path) -> datagen.Register:
    register = datagen.Register()
    import csv

    for path in sorted((ROOT / "bench/work/data").glob("licences-*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for i, row in enumerate(csv.DictReader(handle)):
                if i % 10 == 0:
                    register.known_ids.append(row["operator_id"])
    from registry.services.demo import national_number

    register.unknown_ids = [party + national_number(party, 5_000_000 + j) for party in ("MK", "RS") for j in range(50)]
    return register


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", choices=["sqlite", "postgresql"])
    parser.add_argument("--url", help="database URL (default: the one --keep kept)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--single", type=int, default=1000)
    args = parser.parse_args()
    folder = ROOT / "bench/work" / args.backend
    url = args.url or (folder / "database-url.txt").read_text().strip()
    from registry import create_app

    app = create_app({"database_url": url, "keys_dir": folder / "keys", "log_origin": "aeo-registry.bench/log"},
                     environ={})
    token = json.loads((folder / "tokens.json").read_text())["AL"]["customs"]
    headers = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    # The garbage collector tuned as in each gunicorn worker, so that the
    # timings here are those of the server's CPU work.
    runpy.run_path(str(ROOT / "gunicorn.conf.py"))["post_worker_init"](None)
    rng = random.Random(1)
    register = _ids(folder)
    size = client.get("/api/v1/log").get_json()["tree_size"]

    def timed(name, count, call):
        call()
        profiler = None
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            call()
        wall, used = time.perf_counter() - start, time.process_time() - cpu
        if profiler:
            profiler.stop()
            out = folder / f"micro-{name}.html"
            out.write_text(profiler.output_html())
            print(profiler.output_text(unicode=False, color=False, show_all=False)[:6000])
        print(f"{name}: {wall / count * 1000:.3f} ms wall, {used / count * 1000:.3f} ms CPU per call")

    def verify():
        operator_id = datagen.sample(register, 1, 0.1, rng)[0]
        response = client.get(f"/api/v1/verify/{operator_id}", headers=headers)
        assert response.status_code == 200, response.data

    def batch():
        ids = datagen.sample(register, 5000, 0.1, rng)
        response = client.post("/api/v1/verify:batch", json={"operator_ids": ids}, headers=headers)
        assert response.status_code == 200, response.data

    def inclusion():
        response = client.get(f"/api/v1/log/proof/inclusion?index={rng.randrange(size)}&tree_size={size}")
        assert response.status_code == 200

    def healthz():
        assert client.get("/healthz").status_code == 200

    timed("healthz", args.single, healthz)
    timed("verify", args.single, verify)
    timed("batch5000", 3, batch)
    timed("inclusion", 200, inclusion)


if __name__ == "__main__":
    main()
