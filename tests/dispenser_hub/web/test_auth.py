"""Authentication, the open health route, the operator as actor, and answers for unknown routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr

from dispenser_hub.web import operator_tokens
from dispenser_hub.web.tokens import TokenTable
from tests.dispenser_hub.web.support import API, BOB_TOKEN, T0, error_of

if TYPE_CHECKING:
    from tests.dispenser_hub.web.support import Hub


def test_health_is_open_and_shows_version_time_and_details(hub: Hub) -> None:
    hub.health.update({"mqtt_connected": True, "outbox_backlog": 3})
    response = hub.client.get(f"{API}/health", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "version": "9.8.7",
        "time": T0.isoformat(),
        "details": {"mqtt_connected": True, "outbox_backlog": 3},
    }
    assert response.headers["cache-control"] == "no-store"


def _protected_routes(hub: Hub) -> list[tuple[str, str]]:
    routes: list[tuple[str, str]] = []
    for template, operations in hub.app.openapi()["paths"].items():
        if not template.endswith("/health"):
            path = template.replace("{device_id}", "RM3-000017")
            path = path.replace("{patient_id}", "1").replace("{alarm_id}", "1")
            routes.extend((method.upper(), path) for method in operations)
    return routes


def test_every_route_but_health_needs_a_token(hub: Hub) -> None:
    routes = _protected_routes(hub)
    assert len(routes) == 49
    for method, path in routes:
        response = hub.client.request(method, path, headers={"Authorization": ""}, json={})
        error = error_of(response, 401)
        assert error["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer"), (method, path)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong-token-0123456789abcdef0123456789",
        "Bearer alice-0123456789abcdef0123456789abcde",  # one character short
        f"Basic {BOB_TOKEN}",
        "Bearer",
        "bob",
        "Bearer ünïcödé".encode(),
        "Bearer \udcff".encode("utf-8", "surrogatepass"),
    ],
)
def test_a_wrong_or_malformed_token_is_refused(hub: Hub, header: str | bytes) -> None:
    response = hub.client.get(f"{API}/teams", headers={"Authorization": header})
    error = error_of(response, 401)
    assert "Bearer" in response.headers["www-authenticate"]
    assert BOB_TOKEN not in error["message"]


def test_a_wrong_token_is_named_invalid_in_the_challenge(hub: Hub) -> None:
    response = hub.client.get(f"{API}/teams", headers={"Authorization": "Bearer nope"})
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_the_token_name_is_the_actor_of_what_the_request_does(hub: Hub) -> None:
    hub.ok("POST", "/teams", 201, json={"name": "Arna"}, headers={"Authorization": f"Bearer {BOB_TOKEN}"})
    hub.ok("POST", "/teams", 201, json={"name": "Fana"})
    audit = hub.ok("GET", "/audit")["items"]
    assert [(entry["actor"], entry["action"]) for entry in audit] == [
        ("alice", "team.create"),
        ("bob", "team.create"),
    ]


def test_unknown_routes_and_methods_answer_in_the_error_schema(hub: Hub) -> None:
    assert error_of(hub.client.get("/api/v1/nothing-here"), 404)["code"] == "not_found"
    assert error_of(hub.client.get("/"), 404)["code"] == "not_found"
    assert error_of(hub.client.put(f"{API}/teams", json={}), 405)["code"] == "method_not_allowed"


def test_token_table_finds_each_operator_and_nothing_else() -> None:
    table = TokenTable({"a" * 32: "alice", "b" * 32: "bob", "": "nobody"})
    assert table.operator("a" * 32) == "alice"
    assert table.operator("b" * 32) == "bob"
    assert table.operator("") is None
    assert table.operator("a" * 31) is None
    assert "a" * 32 not in repr(table)


def test_operator_tokens_turn_the_settings_around() -> None:
    by_name = {"alice": SecretStr("t1" * 16), "bob": SecretStr("t2" * 16)}
    assert operator_tokens(by_name) == {"t1" * 16: "alice", "t2" * 16: "bob"}
