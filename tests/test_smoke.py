def test_app_starts_and_publishes(registry, client):
    registry.add_party("MK")
    response = registry.put("MKAEOF000123", __import__("tests.helpers").helpers.licence_fields())
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["log_index"] == 1
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200, client.get("/readyz").get_json()
