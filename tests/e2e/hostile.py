"""Hostile inputs for every REST route, derived from the protos (so a new route is swept too).

Each case changes one thing — one field (top level or one level down), one
query parameter, one path segment, or the body as a whole — to a value a
careless or malicious client might send: overflowing and negative integers,
wrong JSON types, control characters, huge strings, far-away timestamps,
unknown enum names, malformed JSON. The rule under test: none of them gets a
5xx, and every refusal is JSON with an ErrorInfo reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from tools.openapi import Route, load_pool, routes

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTORS = ROOT / "gen" / "descriptors" / "creditmeter.pb"

HUGE = "x" * 70_000
STRINGS: list[Any] = [
    "id\n",
    "\x00",
    "a\u202eb",
    "\u0007bell",
    " ",
    HUGE,
    "😀" * 50,
    "'; DROP TABLE accounts; --",
    12,
    True,
    {"a": 1},
    ["a"],
]
INT64S: list[Any] = [
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999999",
    -1,
    1e30,
    1.5,
    "12abc",
    "",
    True,
    [1],
]
INT32S: list[Any] = [2147483647, 2147483648, -2147483649, -1, 1e12, "x", 2.5]
TIMESTAMPS: list[Any] = [
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2024-02-30T00:00:00Z",
    "yesterday",
    12,
]
ENUMS: list[Any] = ["NOT_A_VALUE", 999, -1, 2147483648, "", True]
BOOLS: list[Any] = ["yes", 2, None]
DOUBLES: list[Any] = ["NaN", "Infinity", -1e308, 1e309, "x"]
BODIES: list[tuple[str, bytes]] = [
    ("malformed", b'{"a":'),
    ("array", b"[]"),
    ("string", b'"x"'),
    ("null", b"null"),
    ("number", b"12"),
    ("not utf-8", b'{"reason": "\xff\xfe"}'),
    ("deep", b'{"a":' * 2000 + b"1" + b"}" * 2000),
    ("trailing garbage", b"{} x"),
    ("duplicate keys", b'{"request_id": "a", "request_id": "b"}'),
]
PATH_SEGMENTS = ["%0A", "%00", "x%0Ay", quote(HUGE[:5000]), "%2E%2E", "%E2%80%AE", "-1", "9223372036854775808"]

_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_SFIXED64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_FIXED64,
}
_INT32 = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_FIXED32,
}


@dataclass(frozen=True)
class Case:
    """One request: what it tries, and how to send it."""

    label: str
    method: str
    url: str
    content: bytes | None = None


def values_for(field: FieldDescriptor) -> list[Any]:
    """Hostile JSON values for one (non-message or well-known) field."""
    t = field.type
    if t == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == "google.protobuf.Timestamp":
            return TIMESTAMPS
        return ["x", 12, [1]]
    if t == FieldDescriptor.TYPE_STRING:
        return STRINGS
    if t in _INT64:
        return INT64S
    if t in _INT32:
        return INT32S
    if t == FieldDescriptor.TYPE_ENUM:
        return ENUMS
    if t == FieldDescriptor.TYPE_BOOL:
        return BOOLS
    return DOUBLES


def _is_plain_message(field: FieldDescriptor) -> bool:
    message = field.message_type
    return (
        message is not None
        and not message.full_name.startswith("google.protobuf.")
        and not message.GetOptions().map_entry
    )


MAP_VALUES: list[Any] = [
    {"k": {}},
    {"k": [1]},
    {"k": 1},
    {"k": "line\n"},
    {"\u0000": "v"},
    {"k" * 300: "v"},
    {f"k{i}": "v" for i in range(1000)},
    [],
    "x",
]


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _field_cases(message: Descriptor, skip: set[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, JSON body) pairs: each field hostile in turn, nested messages one level down."""
    for field in message.fields:
        if field.name in skip:
            continue
        if _is_map(field):
            for value in MAP_VALUES:
                yield f"{field.name}={value!r:.40}", {field.name: value}
            continue
        if _is_plain_message(field):
            for inner in field.message_type.fields:
                if _is_plain_message(inner):
                    continue
                for value in MAP_VALUES if _is_map(inner) else values_for(inner):
                    nested = {inner.name: value}
                    yield (
                        f"{field.name}.{inner.name}={value!r:.40}",
                        {field.name: [nested] if field.is_repeated else nested},
                    )
            yield f"{field.name}=string", {field.name: "x"}
            if field.is_repeated:
                yield f"{field.name}=10k items", {field.name: [{}] * 10_000}
            continue
        for value in values_for(field):
            yield f"{field.name}={value!r:.40}", {field.name: [value] if field.is_repeated else value}
        if field.is_repeated:
            yield f"{field.name}=not a list", {field.name: {"a": 1}}


def _path(route: Route, values: dict[str, str]) -> str:
    path = route.path
    for name in route.path_params:
        path = path.replace("{" + name + "}", values.get(name, "probe"))
    return path


def cases(route: Route) -> Iterator[Case]:
    """Every hostile request for one route."""
    verb = route.verb.upper()
    message = route.method.input_type
    for name in route.path_params:
        for segment in PATH_SEGMENTS:
            body = b"{}" if route.body else None
            yield Case(f"path {name}={segment:.30}", verb, _path(route, {name: segment}), body)
    base = _path(route, {})
    if route.body == "":
        for field in message.fields:
            if field.name in route.path_params or _is_plain_message(field) or field.is_repeated:
                continue
            for value in values_for(field):
                if isinstance(value, (dict, list)):
                    continue
                text = json.dumps(value) if not isinstance(value, str) else value[:8000]
                yield Case(f"query {field.name}={value!r:.40}", verb, f"{base}?{field.name}={quote(text)}")
        yield Case("query unknown", verb, f"{base}?no_such_parameter=1")
        return
    for label, content in BODIES:
        yield Case(f"body {label}", verb, base, content)
    for label, body in _field_cases(message, set(route.path_params)):
        yield Case(f"body {label}", verb, base, json.dumps(body).encode())


def all_routes() -> list[Route]:
    """Every unary REST route. Server-streaming ones (WatchBalance) stay open by design, so a
    request-and-read-the-body sweep would wait forever; the browser tests drive those."""
    pool, fds = load_pool(DESCRIPTORS)
    return [route for route in routes(pool, fds) if not route.method.server_streaming]
