"""Input at the door, without a server: page tokens, id patterns, the OpenAPI and strict-JSON generators."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from services.common import pagetoken
from services.common.errors import DomainError
from services.common.idempotency import validate_request_id
from services.coupons.domain import normalize_code
from services.credits.domain import validate_user_id
from tools import openapi

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTORS = ROOT / "gen" / "descriptors" / "creditmeter.pb"


def _reason(error: pytest.ExceptionInfo[DomainError]) -> str:
    return error.value.reason


@pytest.mark.parametrize("value", ["alice\n", "alice\r\n", "\nalice", "al ice", "alice\x00", "a" * 129, ""])
def test_ids_with_a_trailing_newline_or_control_characters_are_refused(value: str) -> None:
    with pytest.raises(DomainError) as user:
        validate_user_id(value)
    assert _reason(user) == "INVALID_USER_ID"
    with pytest.raises(DomainError) as request:
        validate_request_id(value)
    assert _reason(request) in ("INVALID_REQUEST_ID", "MISSING_REQUEST_ID")


def test_well_formed_ids_still_pass() -> None:
    assert validate_user_id("alice@example.com") == "alice@example.com"
    assert validate_request_id("a" * 128) == "a" * 128


@pytest.mark.parametrize("code", ["SPRING24\n", "SPRING24\r\n", "\tSPRING24", "SPRING\n24", "SPRING24\x00"])
def test_coupon_codes_with_a_newline_or_control_characters_are_refused(code: str) -> None:
    with pytest.raises(DomainError) as error:
        normalize_code(code)
    assert _reason(error) == "INVALID_CODE"


def test_coupon_codes_ignore_surrounding_spaces_and_case() -> None:
    # Codes are typed by people: spaces around them and lower case are forgiven.
    assert normalize_code("  spring-24 ") == "SPRING-24"


def test_page_tokens_round_trip_and_are_bound_to_their_list() -> None:
    token = pagetoken.encode("credits.ListAccounts", "bob")
    assert pagetoken.decode("credits.ListAccounts", token, 1) == ("bob",)
    assert pagetoken.decode("credits.ListAccounts", "", 1) is None
    with pytest.raises(DomainError) as other_list:
        pagetoken.decode("metering.ListEvents", token, 1)
    assert _reason(other_list) == "INVALID_PAGE_TOKEN"


def _forge(payload: bytes, tag: str) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + tag


@pytest.mark.parametrize(
    "token",
    [
        "%%%",
        "a.b.c",
        "x" * 600,
        _forge(b'["bob"]', "AAAAAAAAAAAAAAAA"),
        _forge(b"\xff\xfe", "AAAA"),
        "bob",
        "0" * 40,
    ],
)
def test_crafted_page_tokens_are_refused(token: str) -> None:
    with pytest.raises(DomainError) as error:
        pagetoken.decode("credits.ListAccounts", token, 1)
    assert _reason(error) == "INVALID_PAGE_TOKEN"
    assert error.value.metadata == {"field": "page_token"}


def test_a_tampered_page_token_is_refused() -> None:
    token = pagetoken.encode("credits.ListTransactions", "01a2344f-2a42-74b5-942e-dd17d2a2fb9c")
    body, _, tag = token.partition(".")
    payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    edited = payload.replace(b"01a2", b"ffff")
    with pytest.raises(DomainError):
        pagetoken.decode("credits.ListTransactions", _forge(edited, tag), 1)


def test_page_token_positions_are_checked_before_they_reach_sql() -> None:
    with pytest.raises(DomainError):
        pagetoken.position_uuid("not-a-uuid")
    with pytest.raises(DomainError):
        pagetoken.position_time("2024-01-01T00:00:00")  # naive: not one we issue
    with pytest.raises(DomainError):
        pagetoken.decode("x", pagetoken.encode("x", "a\x00b"), 1)
    assert pagetoken.position_time("2024-01-01T00:00:00+00:00").year == 2024


def test_openapi_document_covers_every_http_route() -> None:
    pool, fds = openapi.load_pool(DESCRIPTORS)
    doc = openapi.document(DESCRIPTORS)
    for route in openapi.routes(pool, fds):
        operation = doc["paths"][route.path][route.verb]
        assert operation["operationId"].endswith(route.method.name)
        assert "default" in operation["responses"]
    compare = doc["paths"]["/api/v1/credits/tiers/compare"]["get"]
    assert compare["security"] == []
    schemas = doc["components"]["schemas"]
    allocate = schemas["creditmeter.credits.v1.AllocateRequest"]
    assert allocate["additionalProperties"] is False
    assert "amount_nanos" in allocate["properties"]


def test_strict_json_tables_list_both_json_names_and_nested_messages() -> None:
    tables = openapi.strict_json_tables(DESCRIPTORS)
    assert '["amount_nanos"] = 0' in tables and '["amountNanos"] = 0' in tables
    assert '"^/api/v1/credits/holds/[^/]+/capture$"' in tables
    assert '"^/api/v1/metering/track%-batch$"' in tables
    # A batch's events are checked field by field too.
    line = next(row for row in tables.splitlines() if '"creditmeter.metering.v1.TrackUsageBatchRequest"] =' in row)
    assert '["events"] = "creditmeter.metering.v1.' in line


def test_the_published_openapi_document_parses_as_openapi_3() -> None:
    import yaml  # type: ignore[import-untyped]

    doc = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    assert doc["openapi"].startswith("3.")
    assert json.dumps(doc)  # plain data, nothing YAML-specific


def _request_messages() -> list[Any]:
    """Every message a caller sends: each RPC's request and the messages nested in it."""
    pool, fds = openapi.load_pool(DESCRIPTORS)
    found: dict[str, Any] = {}

    def walk(message: Any) -> None:
        if message.full_name in found or not message.full_name.startswith("creditmeter."):
            return
        found[message.full_name] = message
        for field in message.fields:
            if field.message_type is not None and not field.message_type.GetOptions().map_entry:
                walk(field.message_type)

    for file in fds.file:
        for service in file.service:
            for method in pool.FindServiceByName(f"{file.package}.{service.name}").methods:
                walk(method.input_type)
    return list(found.values())


def test_every_request_field_declares_its_limits_in_the_contract() -> None:
    """Strings, numbers, enums, times, lists and maps in requests carry buf.validate rules (bools need none)."""
    from buf.validate import validate_pb2
    from google.protobuf.descriptor import FieldDescriptor

    missing = []
    for message in _request_messages():
        for field in message.fields:
            if field.type == FieldDescriptor.TYPE_BOOL:
                continue
            if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.full_name.startswith("creditmeter."):
                if not field.is_repeated:
                    continue  # its own fields are checked (protovalidate validates nested messages)
            if not field.GetOptions().HasExtension(validate_pb2.field):
                missing.append(f"{message.full_name}.{field.name}")
    assert not missing, "add (buf.validate.field) rules to: " + ", ".join(missing)


def test_violation_messages_escape_what_the_caller_sent() -> None:
    from creditmeter.metering.v1 import metering_pb2 as mpb

    from services.common.validation import violation_error

    request = mpb.TrackUsageBatchRequest(events=[mpb.UsageEvent(event_id="a")])
    request.events[0].metadata["no\tte\u202e"] = "x"
    error = violation_error(request)
    assert error is not None and error.reason == "INVALID_FIELD"
    assert error.metadata["field"] == 'events[0].metadata["no\\u0009te\\u202e"]'
    assert error.metadata["rule"] == "string.pattern"
    assert all(" " <= ch <= "~" for ch in error.message)
    assert violation_error(mpb.TrackUsageBatchRequest(events=[mpb.UsageEvent(event_id="ok")])) is None
