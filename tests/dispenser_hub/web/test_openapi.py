"""The OpenAPI document is complete, and no input, however odd, makes the API fail with a 500."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from tests.dispenser_hub.web.support import API

if TYPE_CHECKING:
    from tests.dispenser_hub.web.support import Hub

ERROR_REF = "#/components/schemas/ErrorResponse"
METHODS = {"get", "post", "put", "patch", "delete"}


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_the_document_describes_the_api(hub: Hub) -> None:
    document = hub.app.openapi()
    assert document["info"]["title"] == "dispenser-hub API"
    assert document["info"]["version"] == "9.8.7"
    assert "Bearer" in document["info"]["description"]
    assert {tag["name"] for tag in document["tags"]} >= {"patients", "devices", "alarms", "audit"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert hub.ok("GET", "/openapi.json") == document


def test_every_operation_has_a_summary_description_tag_and_response_model(hub: Hub) -> None:
    operations = _operations(hub.app.openapi())
    assert len(operations) == 50
    operation_ids = [operation["operationId"] for _, _, operation in operations]
    assert len(set(operation_ids)) == len(operations)
    assert "register_device" in operation_ids
    for method, path, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        assert operation.get("description"), where
        assert operation.get("tags"), where
        success = [code for code in operation["responses"] if code.startswith("2")]
        assert len(success) == 1, where
        assert operation["responses"][success[0]]["description"] != "Successful Response", where
        schema = operation["responses"][success[0]]["content"]["application/json"]["schema"]
        assert schema["$ref"].startswith("#/components/schemas/"), where
        assert (
            schema["$ref"]
            .removeprefix("#/components/schemas/")
            .endswith(("Public", "Page", "List", "Detail", "Registered"))
        ), where


def test_every_error_response_uses_the_one_error_schema(hub: Hub) -> None:
    documented: set[str] = set()
    for method, path, operation in _operations(hub.app.openapi()):
        where = f"{method.upper()} {path}"
        errors = {code: answer for code, answer in operation["responses"].items() if code[0] in "45"}
        documented |= set(errors)
        for answer in errors.values():
            assert answer["content"]["application/json"]["schema"]["$ref"] == ERROR_REF, where
        has_inputs = bool(operation.get("parameters") or operation.get("requestBody"))
        assert ("422" in errors) == has_inputs, where
        secured = bool(operation.get("security"))
        assert secured == (not path.endswith("/health")), where
        assert ("401" in errors) == secured, where
    assert documented == {"400", "401", "404", "409", "422"}


def test_request_bodies_refuse_unknown_members(hub: Hub) -> None:
    schemas = hub.app.openapi()["components"]["schemas"]
    inputs = [name for name in schemas if name.endswith(("Create", "Request", "Register"))]
    assert len(inputs) >= 10
    for name in inputs:
        assert schemas[name].get("additionalProperties") is False, name


def test_public_models_never_carry_the_national_id_except_its_own(hub: Hub) -> None:
    schemas = hub.app.openapi()["components"]["schemas"]
    carriers = [name for name, schema in schemas.items() if "national_id" in schema.get("properties", {})]
    assert sorted(carriers) == ["NationalIdPublic", "PatientCreate"]


_ODD_PATH_VALUES = ["0", "abc", "9" * 40, "%00", "RM3-000017", "%F0%9F%92%8A" * 20]
_ODD_BODIES: list[Any] = [None, [], "text", {"unknown": 1}, {"patient_id": 2**80, "reason": None}]
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00")


@pytest.mark.parametrize("value", _ODD_PATH_VALUES)
def test_odd_input_never_makes_a_500(hub: Hub, value: str) -> None:
    hub.device()
    hub.patient()
    for method, path, _ in _operations(hub.app.openapi()):
        url = re.sub(r"\{[a-z_]+\}", value, path)
        for body in _ODD_BODIES:
            response = hub.client.request(method.upper(), url, json=body, params={"limit": value})
            assert response.status_code < 500, (method, url, body, response.text)
            assert "error" in response.json() or response.status_code < 300
        response = hub.client.request(
            method.upper(), url, content=b"{not json", headers={"content-type": "application/json"}
        )
        assert response.status_code < 500, (method, url, response.text)


def test_every_time_in_an_answer_is_utc_with_its_offset(hub: Hub) -> None:
    hub.device()
    patient_id = hub.patient()["id"]
    hub.ok("POST", "/devices/RM3-000017/binding", 201, json={"patient_id": patient_id, "reason": "new"})
    for path in ("/devices", "/patients", "/devices/RM3-000017/bindings", "/audit", "/health"):
        text = hub.client.get(f"{API}{path}").text
        times = re.findall(r'"(\d{4}-\d\d-\d\dT[^"]*)"', text)
        assert times, path
        assert all(_TIME.fullmatch(time) for time in times), (path, times)
