"""docs/api.md, the repository's own API reference, and the OpenAPI spec the service serves name the same API."""

from __future__ import annotations

import re
from pathlib import Path

from registry.domain.licence import STATUSES, TYPES
from registry.domain.recognition import REASONS
from registry.errors import RegistryError

REFERENCE = (Path(__file__).parents[1] / "docs" / "api.md").read_text()
OPERATION = re.compile(r"`(GET|PUT|POST|DELETE|PATCH) (/[^`\s?]*)")
# Named in the reference as not yet served (its "Service" section says so).
NOT_YET_SERVED = {("GET", "/metrics")}
# Served by Flask beside the API, not in the spec: the spec itself and its browsable page.
OUTSIDE_THE_SPEC = {("GET", "/openapi.json"), ("GET", "/docs")}


def _shape(path: str) -> str:
    """A path with its parameters blanked, however they are spelt: ``{code}``, ``<N>``, ``[.p/<W>]``."""
    path = re.sub(r"\[[^\]]*\]", "", path)
    return re.sub(r"\{[^}]*\}|<[^>]*>", "{}", path)


def _documented() -> set[tuple[str, str]]:
    return {(method, _shape(path)) for method, path in OPERATION.findall(REFERENCE)}


def _served(client) -> set[tuple[str, str]]:
    spec = client.get("/openapi.json").get_json()
    return {(method.upper(), _shape(path)) for path, operations in spec["paths"].items()
            for method, operation in operations.items() if isinstance(operation, dict) and "responses" in operation}


def test_every_served_operation_is_in_the_reference(client):
    missing = _served(client) - _documented()
    assert not missing, f"served but not in docs/api.md: {sorted(missing)}"


def test_every_operation_in_the_reference_is_served(client):
    unknown = _documented() - _served(client) - NOT_YET_SERVED - OUTSIDE_THE_SPEC
    assert not unknown, f"in docs/api.md but not served: {sorted(unknown)}"
    for method, path in OUTSIDE_THE_SPEC:
        assert client.open(path, method=method).status_code == 200


def test_the_references_codes_are_the_codes_in_use(client):
    words = set(re.findall(r"`([a-z_]+)`", REFERENCE))
    assert set(REASONS) <= words and set(STATUSES) <= words
    assert set(TYPES) <= set(re.findall(r"`(AEO[CSF])`", REFERENCE))
    slugs = {cls.slug for cls in _subclasses(RegistryError)} | {RegistryError.slug}
    documented = set(re.search(r"with slugs\n?(.*?)\.\n", REFERENCE, re.S).group(1).replace("\n", " ").split("`")[1::2])
    assert slugs <= documented, f"problem types not in docs/api.md: {sorted(slugs - documented)}"


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found
