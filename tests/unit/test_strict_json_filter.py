"""The gateway's strict_json filter (gen/gateway/strict_json.lua) run in LuaJIT, Envoy's Lua, outside Envoy.

The end-to-end tests send a few refused bodies through the real gateway; here the same filter code meets
many generated bodies and must agree with a plain Python reading of the same field tables: the first field,
in document order, that its message does not define (UNKNOWN_FIELD) or that its object already has
(DUPLICATE_FIELD), with the dotted path the gateway reports — and no refusal at all for a body without one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

lupa = pytest.importorskip("lupa.luajit21")

FILTER = Path(__file__).resolve().parents[2] / "gen" / "gateway" / "strict_json.lua"

# Envoy's side of the filter: the request's headers and body, dynamic metadata and a local reply.
HARNESS = """
function run_request(method, path, body)
  local reply, meta = nil, {}
  local handle = {}
  function handle:headers()
    return { get = function(_, name) if name == ":method" then return method end return path end }
  end
  function handle:body()
    if body == nil then return nil end
    return { length = function() return #body end,
             getBytes = function(_, from, count) return string.sub(body, from + 1, from + count) end }
  end
  function handle:streamInfo()
    return { dynamicMetadata = function() return { set = function(_, _, key, value) meta[key] = value end } end }
  end
  function handle:respond(headers, text) reply = headers[":status"] end
  envoy_on_request(handle)
  return reply, meta.reason, meta.field
end
"""


@dataclass
class Filter:
    run: Any
    messages: dict[str, dict[str, Any]]
    routes: list[tuple[str, str, str]]  # method, a path that matches, message

    def check(self, method: str, path: str, body: str | None) -> tuple[str | None, str | None, str | None]:
        status, reason, field = self.run(method, path, body)
        return status, reason, field


@pytest.fixture(scope="module")
def strict_json() -> Filter:
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    runtime.execute(FILTER.read_text() + HARNESS)
    lua = runtime.globals()
    messages = {name: dict(fields.items()) for name, fields in lua.MESSAGES.items()}
    routes = []
    for method, listed in lua.ROUTES.items():
        for route in listed.values():
            path = route[1].strip("^$").replace("[^/]+", "some-id").replace("%", "")
            routes.append((method, path, route[2]))
    return Filter(lua.run_request, messages, sorted(routes))


# --- a reference reading of the tables -------------------------------------------------------------


@dataclass
class Obj:
    """A JSON object as written: its members in order, repeats included."""

    pairs: list[tuple[str, Any]]


def to_json(value: Any) -> str:
    if isinstance(value, Obj):
        return "{" + ", ".join(f"{json.dumps(k)}: {to_json(v)}" for k, v in value.pairs) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


def first_problem(messages: dict[str, Any], value: Any, kind: Any, path: str) -> tuple[str, str] | None:
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = first_problem(messages, item, kind, f"{path}[{index}]")
            if found:
                return found
        return None
    if not isinstance(value, Obj):
        return None
    values = kind[4:] if isinstance(kind, str) and kind.startswith("map:") else None
    fields = messages.get(kind) if isinstance(kind, str) and values is None else None
    seen: set[str] = set()
    for key, item in value.pairs:
        inner = key if path == "" else f"{path}.{key}"
        if key in seen:
            return "DUPLICATE_FIELD", inner
        seen.add(key)
        if fields is not None and key not in fields:
            return "UNKNOWN_FIELD", inner
        child = fields[key] if fields is not None else values
        found = first_problem(messages, item, child, inner)
        if found:
            return found
    return None


# --- generated bodies -----------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(max_codepoint=0x2FF), max_size=12),
)
stray_keys = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=10)


@st.composite
def bodies(draw: st.DrawFn, messages: dict[str, Any], kind: Any, depth: int = 0) -> Any:
    """A JSON value for ``kind``: mostly known fields, now and then a stray key or a repeated one."""
    if depth > 5 or (not isinstance(kind, str) and draw(st.booleans())):
        return draw(scalars)
    if draw(st.integers(0, 9)) == 0:
        return [draw(bodies(messages, kind, depth + 1)) for _ in range(draw(st.integers(0, 3)))]
    values = kind[4:] if isinstance(kind, str) and kind.startswith("map:") else None
    fields = messages.get(kind) if isinstance(kind, str) and values is None else None
    pairs: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(0, 5))):
        roll = draw(st.integers(0, 19))
        if roll == 0:
            key = draw(stray_keys)
        elif roll == 1 and pairs:
            key = draw(st.sampled_from([k for k, _ in pairs]))
        elif fields:
            key = draw(st.sampled_from(sorted(fields)))
        else:
            key = draw(stray_keys)
        child = fields.get(key) if fields is not None else values
        pairs.append((key, draw(bodies(messages, child, depth + 1))))
    return Obj(pairs)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_filter_refuses_exactly_the_first_unknown_or_repeated_field(strict_json: Filter, data: Any) -> None:
    method, path, message = data.draw(st.sampled_from(strict_json.routes))
    body = data.draw(bodies(strict_json.messages, message))
    text = to_json(body)
    expected = first_problem(strict_json.messages, body, message, "")
    status, reason, field = strict_json.check(method, path, text)
    if expected is None:
        assert status is None, (text, reason, field)
    else:
        assert (status, reason, field) == ("400", expected[0], expected[1][:200]), text


def test_a_full_batch_passes_and_a_stray_field_in_its_last_event_is_named(strict_json: Filter) -> None:
    event = {"user_id": "u", "service": "SERVICE_KIND_LLM", "inputTokens": "10", "metadata": {"k": "v"}}
    events: list[dict[str, Any]] = [{"event_id": f"e-{i}", **event} for i in range(10_000)]
    body = json.dumps({"events": events})
    assert strict_json.check("POST", "/api/v1/metering/track-batch", body) == (None, None, None)
    events[-1]["modle"] = "x"
    refused = strict_json.check("POST", "/api/v1/metering/track-batch", json.dumps({"events": events}))
    assert refused == ("400", "UNKNOWN_FIELD", "events[9999].modle")


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        # Escaped keys are read as the transcoder reads them.
        ("/api/v1/credits/deduct", '{"user\\u005fid": "a", "user_id": "b"}', ("400", "DUPLICATE_FIELD", "user_id")),
        ("/api/v1/credits/deduct", '{"amount\\nnanos": 1}', ("400", "UNKNOWN_FIELD", "amount\nnanos")),
        # Routes with a path parameter, and a query string.
        ("/api/v1/credits/holds/h-1/capture", '{"amount_nanos": "1", "x": 1}', ("400", "UNKNOWN_FIELD", "x")),
        ("/api/v1/credits/deduct?x=1", '{"y": 1}', ("400", "UNKNOWN_FIELD", "y")),
        # Not JSON, or not a route with a body: left to the transcoder.
        ("/api/v1/credits/deduct", '{"user_id": "a",', (None, None, None)),
        ("/api/v1/credits/deductx", '{"y": 1}', (None, None, None)),
        ("/api/v1/credits/deduct", "", (None, None, None)),
        # Nested deeper than the filter reads: left to the transcoder.
        ("/api/v1/credits/deduct", '{"user_id": ' + "[" * 70 + "]" * 70 + "}", (None, None, None)),
    ],
)
def test_edge_cases(strict_json: Filter, path: str, body: str, expected: tuple[str | None, ...]) -> None:
    assert strict_json.check("POST", path, body) == expected
