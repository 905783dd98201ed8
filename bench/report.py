"""The results as JSON and as a Markdown table, with the issue's targets and the peers beside them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# (label, where in a backend's figures, target, lower is better)
TARGETS = (
    ("bulk publishing, licences/s", ("publish", "licences_per_second"), 2000, False),
    ("verify / healthz throughput", ("http", "verify_over_healthz"), 0.6, False),
    ("verify p99, ms", ("http", "verify", "p99_ms"), 25, True),
    ("batch of 5,000 ids, ms", ("batch", "5000", "median_ms"), 250, True),
    ("inclusion proof, ms", ("proofs", "inclusion", "median_ms"), 5, True),
    ("consistency proof, ms", ("proofs", "consistency", "median_ms"), 5, True),
    ("audit of the full log, s", ("audit", "seconds"), 300, True),
    ("peak RSS per worker, MB", ("memory", "peak_rss_mb"), 250, True),
)

ROWS = (
    ("bulk publishing (`registry import`), licences/s", ("publish", "licences_per_second")),
    ("healthz, req/s", ("http", "healthz", "rps")),
    ("healthz p50 / p99, ms", (("http", "healthz", "p50_ms"), ("http", "healthz", "p99_ms"))),
    ("verify, req/s", ("http", "verify", "rps")),
    ("verify p50 / p99, ms", (("http", "verify", "p50_ms"), ("http", "verify", "p99_ms"))),
    ("verify / healthz", ("http", "verify_over_healthz")),
    *((f"CPU per {name} request, µs: whole machine / server workers / HAProxy / database server / wrk / rest",
       tuple(("http", name, "cpu", kind) for kind in ("machine", "workers", "proxy", "database", "wrk", "rest")))
      for name in ("healthz", "verify")),
    ("machine busy during verify, cores / share stolen by the host",
     (("http", "verify", "cpu", "cores"), ("http", "verify", "cpu", "stolen"))),
    ("verify batch of 1,000, ms (median)", ("batch", "1000", "median_ms")),
    ("verify batch of 5,000, ms (median)", ("batch", "5000", "median_ms")),
    ("disk read by the machine during a batch of 5,000, MB (median)", ("batch", "5000", "disk_read_mb")),
    ("inclusion proof at full size, ms (median / max)",
     (("proofs", "inclusion", "median_ms"), ("proofs", "inclusion", "max_ms"))),
    ("consistency proof to full size, ms (median / max)",
     (("proofs", "consistency", "median_ms"), ("proofs", "consistency", "max_ms"))),
    ("disk read by the machine per inclusion + consistency proof pair, kB", ("proofs", "disk_read_kb_per_pair")),
    ("5,000-id answer with statements and proofs: MB / checked offline, s",
     (("evidence", "answer_mb"), ("evidence", "answer_check_seconds"))),
    ("snapshot of one party: licences / MB / served, s / checked offline, s",
     (("evidence", "snapshot_licences"), ("evidence", "snapshot_mb"), ("evidence", "snapshot_served_seconds"),
      ("evidence", "snapshot_check_seconds"))),
    ("audit of the full log, s", ("audit", "seconds")),
    ("audit, entries/s", ("audit", "entries_per_second")),
    ("peak RSS per worker (VmHWM), MB", ("memory", "peak_rss_mb")),
    ("peak private memory per worker (RssAnon + RssShmem, sampled), MB", ("memory", "peak_private_mb")),
    ("peak mapped file pages per worker (RssFile, sampled), MB", ("memory", "peak_file_mb")),
    ("peak RSS of a worker's batch helper process (VmHWM), MB", ("memory", "helper_peak_rss_mb")),
    ("log size", ("tree_size",)),
)


def _get(figures: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = figures
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value < 10 else f"{value:,.1f}".removesuffix(".0")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cell(figures: dict[str, Any], spec: tuple) -> str:
    if spec and isinstance(spec[0], tuple):
        return " / ".join(_fmt(_get(figures, path)) for path in spec)
    return _fmt(_get(figures, spec))


def markdown(results: dict[str, Any]) -> str:
    backends = list(results["backends"])
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    m = results["machine"]
    lines = [
        f"# Benchmark: {results['n']:,} licences, {results['started_at']}",
        "",
        f"Command: `{results['command']}` (took {results['seconds']:,} s)."
        + (f" Conditions: {results['label']}." if results.get("label") else ""),
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Linux {m['kernel']}; "
        f"Python {m['python']}, SQLite {m['sqlite']}, PostgreSQL {m['postgresql']}, {m['wrk']}"
        f"{', ' + m['haproxy'] if m.get('haproxy') else ''}; "
        f"load average at start {m['load_average_at_start']}; commit {m['commit']}.",
        "",
        f"Server: {_server(results['settings'])}, REGISTRY_ENV=production, "
        f"REGISTRY_BATCH_HELPER={results['settings'].get('batch_helper', 'false (before it existed)')}; wrk "
        f"{results['settings']['wrk_threads']} threads, {results['settings']['connections']} connections, "
        f"{results['settings']['rounds']} alternating rounds of {results['settings']['wrk_seconds']} s "
        f"(median round shown); verify over random known ids with 10% unknown ones.",
        "",
        "| figure | " + " | ".join(names[b] for b in backends) + " |",
        "| --- |" + " ---: |" * len(backends),
    ]
    for label, spec in ROWS:
        lines.append(f"| {label} | " + " | ".join(_cell(results["backends"][b], spec) for b in backends) + " |")
    lines += ["", "## Targets (issue 5, for 1,000,000 licences)", "",
              "| target | goal | " + " | ".join(names[b] for b in backends) + " |",
              "| --- | --- |" + " --- |" * len(backends)]
    for label, path, goal, lower in TARGETS:
        cells = []
        for backend in backends:
            value = _get(results["backends"][backend], path)
            ok = value is not None and (value <= goal if lower else value >= goal)
            cells.append(f"{_fmt(value)} {'✅' if ok else '❌'}")
        lines.append(f"| {label} | {'≤' if lower else '≥'} {_fmt(goal)} | " + " | ".join(cells) + " |")
    lines += _peers(results, backends, names)
    return "\n".join(lines) + "\n"


def _server(settings: dict[str, Any]) -> str:
    workers = settings["workers"]
    shape = f"{workers} worker{'' if workers == 1 else 's'} × {settings['threads']} threads"
    if not settings.get("instances"):  # runs before the proxy: one master, its workers taking turns
        return f"gunicorn with gunicorn.conf.py, {shape}"
    return (f"{settings['instances']} gunicorn instances (gunicorn.conf.py) of {shape} each, "
            f"behind {settings['proxy']}")


def _peers(results: dict[str, Any], backends: list[str], names: dict[str, str]) -> list[str]:
    peers = results.get("peers") or {}
    if not peers:
        return []
    lines = ["", "## Peers, same run", "",
             "| peer | figure | ours | ratio |", "| --- | ---: | ---: | ---: |"]
    sign = peers.get("ed25519")
    for backend in backends:
        figures = results["backends"][backend]
        name = names[backend]
        healthz = _get(figures, ("http", "healthz", "rps"))
        verify = _get(figures, ("http", "verify", "rps"))
        lines.append(f"| bare /healthz, same app and server ({name}) | {_fmt(healthz)} req/s | "
                     f"verify {_fmt(verify)} req/s | {_fmt(_get(figures, ('http', 'verify_over_healthz')))} |")
        if sign:
            rate = _get(figures, ("publish", "licences_per_second"))
            ratio = rate / sign["signs_per_second"] if rate else None
            lines.append(f"| Ed25519 sign, 300 bytes (`cryptography`) | {_fmt(sign['signs_per_second'])}/s "
                         f"({sign['sign_us']} µs) | publishing {_fmt(rate)}/s ({name}) | {_fmt(ratio)} |")
    tree = peers.get("pymerkle")
    if tree:
        source = results["backends"][tree["leaves_from"]]
        rate = _get(source, ("publish", "licences_per_second"))
        lines.append(f"| pymerkle 7.0.0 SqliteTree bulk append ({tree['leaves']:,} leaves, hashing only) | "
                     f"{_fmt(tree['bulk_append_leaves_per_second'])} leaves/s | publishing {_fmt(rate)}/s, signed "
                     f"and indexed | {_fmt(rate / tree['bulk_append_leaves_per_second'] if rate else None)} |")
        lines.append(f"| pymerkle one-by-one append | {_fmt(tree['one_by_one_append_leaves_per_second'])} leaves/s"
                     f" | | |")
        for label, key, ours in (("cold inclusion proof", "cold_inclusion_proof_ms", ("proofs", "inclusion")),
                                 ("cold consistency proof", "cold_consistency_proof_ms",
                                  ("proofs", "consistency"))):
            our = _get(source, (*ours, "median_ms"))
            lines.append(f"| pymerkle {label} at full size | {_fmt(tree[key])} ms | {_fmt(our)} ms over HTTP | "
                         f"{_fmt(tree[key] / our if our else None)}× faster |")
        lines.append(f"| pymerkle cold root at full size | {_fmt(tree['cold_root_ms'])} ms | "
                     f"root identical: {'yes' if tree['same_root'] else 'NO'} | |")
    return lines


def write(results: dict[str, Any], folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{results['started_at'][:10]}-{results['n']}"
    if (folder / f"{stem}.json").exists():  # a second run that day keeps the first
        stem += "-" + results["started_at"][11:16].replace(":", "")
    paths = {"json": folder / f"{stem}.json", "markdown": folder / f"{stem}.md", "latest": folder / "latest.md"}
    paths["json"].write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    text = markdown(results)
    paths["markdown"].write_text(text)
    paths["latest"].write_text(text)
    return paths
