"""The OpenAPI spec is valid, covers every route, and errors are problem+json."""

import pytest
from openapi_spec_validator import validate


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").get_json()


def _openapi_path(rule: str) -> str:
    import re

    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_spec_is_valid_openapi(spec):
    validate(spec)
    assert spec["openapi"].startswith("3.0")
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_every_api_route_is_documented(app, spec):
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "docs_assets.docs_assets") or rule.endpoint.startswith(("api-docs", "web.")):
            continue  # not the API: Flask's files, the docs, the web pages (registry/http/web)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (_openapi_path(rule.rule), method) in documented, rule.rule


def test_every_operation_has_a_summary_and_documents_errors_as_problems(spec):
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            assert operation.get("summary"), (method, path)
            default = operation["responses"]["default"]["$ref"]
            assert default == "#/components/responses/DEFAULT_ERROR"
    content = spec["components"]["responses"]["DEFAULT_ERROR"]["content"]
    assert list(content) == ["application/problem+json"]


def test_answer_fields_are_documented(spec):
    result = spec["components"]["schemas"]["Result"]["properties"]
    assert {"operator_id", "recognised", "reason", "operator", "recognition", "licences"} <= set(result)
    assert "no_consent" in result["reason"]["enum"]
    verification = spec["components"]["schemas"]["Verification"]["properties"]
    assert {"verifier", "at", "nonce", "produced_at", "next_update", "checkpoint", "results"} <= set(verification)


def test_docs_page_and_its_assets_are_served_locally(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.get_data(as_text=True)
    asset = client.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200
    asset.close()


@pytest.mark.parametrize(("method", "path", "status"), [
    ("get", "/nope", 404),
    ("delete", "/api/v1/licences", 405),
    ("post", "/healthz", 405),
])
def test_routing_errors_are_problems(client, method, path, status):
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    assert "<html" not in response.get_data(as_text=True).lower()


def test_witness_parameters_and_answers_are_documented(spec):
    def query_parameters(path: str, method: str = "get") -> set[str]:
        return {p["name"] for p in spec["paths"][path][method].get("parameters", []) if p["in"] == "query"}

    for path in ("/api/v1/verify/{operator_id}", "/api/v1/snapshot", "/api/v1/log/checkpoint"):
        assert "cosigned" in query_parameters(path), path
    batch = spec["components"]["schemas"]["VerifyBatch"]["properties"]
    assert batch["cosigned"]["minimum"] == 1
    assert query_parameters("/api/v1/log/proof/tlog-proof") == {"index"}
    assert "witnesses" in spec["components"]["schemas"]["Health"]["properties"]
    note = spec["components"]["schemas"]["AnswerCheckpoint"]["properties"]["note"]["description"]
    assert "cosignature" in note
