"""Publishing in bulk takes the fast write paths (COPY on PostgreSQL); what lands is what a single PUT writes."""

from __future__ import annotations

import json

from registry.services import log
from registry.store import bulk

from .helpers import licence_fields, operator_id

COUNT = 300  # above bulk.COPY_FROM, so PostgreSQL writes with COPY


def test_a_large_batch_lands_whole_and_audits_clean(registry, runner):
    registry.add_party("MK").add_party("AL")
    assert COUNT >= bulk.COPY_FROM
    items = [{"certificate": f"MKAEOF{n:06d}",
              **licence_fields(serial=n, operator={"id": operator_id("MK", n), "name": f"Operator {n}",
                                                   "aliases": [operator_id("MK", 10_000 + n)] if n % 3 == 0 else [],
                                                   "address": None},
                               status="suspended" if n % 7 == 0 else "active")}
             for n in range(1, COUNT + 1)]
    response = registry.batch(items)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["tree_size"] == registry.log_size()
    first = body["licences"][0]["log_index"]
    assert [item["log_index"] for item in body["licences"]] == list(range(first, first + COUNT))

    detail = registry.client.get("/api/v1/licences/MKAEOF000021", headers=registry.headers("MK")).get_json()
    assert detail["licence"]["status"] == "suspended"
    assert detail["licence"]["effective_at"] == "2026-11-27T10:00:00Z"
    assert detail["licence"]["operator"]["aliases"] == [operator_id("MK", 10_021)]

    with registry.session() as session:
        entry = log.entries(session, detail["log_index"], 1)[0]
        assert json.loads(entry.leaf)["logged_at"] == "2026-11-27T10:00:00Z"
        assert entry.logged_at.isoformat() == "2026-11-27T10:00:00+00:00"

    alias = registry.client.get(f"/api/v1/verify/{operator_id('MK', 10_021)}", headers=registry.headers("MK"))
    assert alias.get_json()["verification"]["results"][0]["licences"][0]["certificate"] == "MKAEOF000021"

    # Sending the same batch again publishes nothing.
    again = registry.batch(items).get_json()
    assert again["tree_size"] == body["tree_size"]

    result = runner.invoke(args=["registry", "audit"])
    assert result.exit_code == 0, result.output
    assert f"{body['tree_size']} entries" in result.stdout
