"""Derives the REST surface from the protos: the OpenAPI 3 document and the gateway's JSON field lists.

Both come from the descriptor set ``make protos`` writes (with source info, so
proto comments become descriptions): every RPC with a ``google.api.http``
annotation is a route, its request message the body (``body: "*"``) or the
query parameters (``GET``/``DELETE``), its response the 200 body, and
``google.rpc.Status`` every error. ``buf.validate`` constraints on a field
become the JSON Schema limits of its property (lengths, patterns, ranges), so
the published document states the same limits the services enforce.

The JSON shapes follow what Envoy's transcoder does with our print options:
proto field names, enums as their names, 64-bit integers as decimal strings
(numbers accepted on input), timestamps as RFC 3339 strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from buf.validate import validate_pb2
from google.api import annotations_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor

ROOT = Path(__file__).resolve().parent.parent
OPENAPI = ROOT / "docs" / "openapi.yaml"
# Routes the gateway serves without a token (its jwt_authn rules say the same).
PUBLIC_PATHS = frozenset({"/api/v1/credits/tiers/compare"})
OUR_PACKAGE = "creditmeter."

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
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
}


@dataclass(frozen=True)
class Route:
    """One REST route: its HTTP verb and path template, and the RPC it maps to."""

    verb: str
    path: str
    body: str
    method: MethodDescriptor

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{([a-z_][a-z0-9_.]*)}", self.path)


def load_pool(descriptor_set: Path) -> tuple[descriptor_pool.DescriptorPool, descriptor_pb2.FileDescriptorSet]:
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in fds.file:
        pool.Add(file)
    return pool, fds


def routes(pool: descriptor_pool.DescriptorPool, fds: descriptor_pb2.FileDescriptorSet) -> list[Route]:
    """Every google.api.http route of our services, in the order the protos declare them."""
    found: list[Route] = []
    for file in fds.file:
        if not file.package.startswith(OUR_PACKAGE):
            continue
        for service in file.service:
            described = pool.FindServiceByName(f"{file.package}.{service.name}")
            for method in described.methods:
                rule = method.GetOptions().Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern")
                if verb is None or verb == "custom":
                    continue
                # {name=segments/*} binds a field to several segments; the field name is what matters here.
                path = re.sub(r"{([^}=]+)=[^}]*}", r"{\1}", getattr(rule, verb))
                found.append(Route(verb, path, rule.body, method))
    return found


def _comments(fds: descriptor_pb2.FileDescriptorSet) -> dict[str, str]:
    """Leading comments by full name (messages, fields, enums, methods)."""
    found: dict[str, str] = {}
    for file in fds.file:
        _file_comments(file, found)
    return found


def _file_comments(file: descriptor_pb2.FileDescriptorProto, found: dict[str, str]) -> None:
    locations = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}

    def note(name: str, path: tuple[int, ...]) -> None:
        text = locations.get(path, "").strip()
        if text:
            found[name] = re.sub(r"\s*\n\s*", " ", text)

    def walk_message(prefix: str, message: descriptor_pb2.DescriptorProto, path: tuple[int, ...]) -> None:
        name = f"{prefix}.{message.name}"
        note(name, path)
        for i, field in enumerate(message.field):
            note(f"{name}.{field.name}", (*path, 2, i))
        for i, nested in enumerate(message.nested_type):
            walk_message(name, nested, (*path, 3, i))
        for i, enum in enumerate(message.enum_type):
            note(f"{name}.{enum.name}", (*path, 4, i))

    for i, message in enumerate(file.message_type):
        walk_message(file.package, message, (4, i))
    for i, enum in enumerate(file.enum_type):
        note(f"{file.package}.{enum.name}", (5, i))
    for i, service in enumerate(file.service):
        for j, method in enumerate(service.method):
            note(f"{file.package}.{service.name}.{method.name}", (6, i, 2, j))


def _constraints(field: FieldDescriptor) -> dict[str, Any]:
    """JSON Schema limits from the field's buf.validate rules (the ones JSON Schema can say)."""
    options = field.GetOptions()
    if not options.HasExtension(validate_pb2.field):
        return {}
    rules = options.Extensions[validate_pb2.field]
    out: dict[str, Any] = {}
    kind = rules.WhichOneof("type")
    if kind == "string":
        s = rules.string
        # IGNORE_IF_ZERO_VALUE: an empty string skips the rules (the service then applies its default or says
        # what is missing), so the documented pattern admits it too.
        optional = rules.ignore == validate_pb2.IGNORE_IF_ZERO_VALUE
        if s.HasField("min_len") and not optional:
            out["minLength"] = s.min_len
        if s.HasField("max_len"):
            out["maxLength"] = s.max_len
        if s.HasField("len"):
            out["minLength"] = out["maxLength"] = s.len
        if s.HasField("pattern"):
            out["pattern"] = f"^$|{s.pattern}" if optional else s.pattern
        if s.HasField("uuid") and s.uuid:
            out["pattern"] = "^$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        if s.HasField("const"):
            out["enum"] = [s.const]
        if getattr(s, "in"):
            out["enum"] = list(getattr(s, "in"))
    elif kind in ("int32", "int64", "double"):
        r = getattr(rules, kind)
        for bound, key in (("gte", "minimum"), ("lte", "maximum")):
            if r.HasField(bound):
                out[key] = getattr(r, bound)
        if r.HasField("gt"):
            out["exclusiveMinimum"] = r.gt
        if r.HasField("lt"):
            out["exclusiveMaximum"] = r.lt
    elif kind == "repeated":
        r = rules.repeated
        if r.HasField("min_items"):
            out["minItems"] = r.min_items
        if r.HasField("max_items"):
            out["maxItems"] = r.max_items
    return out


class _Builder:
    def __init__(self, comments: dict[str, str]) -> None:
        self.comments = comments
        self.schemas: dict[str, dict[str, Any]] = {}

    def ref(self, message: Descriptor) -> dict[str, Any]:
        if message.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[message.full_name])
        if message.full_name not in self.schemas:
            self.schemas[message.full_name] = {}  # placeholder: recursion ends here
            self.schemas[message.full_name] = self.message(message)
        return {"$ref": f"#/components/schemas/{message.full_name}"}

    def message(self, message: Descriptor, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object"}
        if message.full_name in self.comments:
            schema["description"] = self.comments[message.full_name]
        schema["properties"] = {
            field.name: self.field(field, f"{message.full_name}.{field.name}")
            for field in message.fields
            if field.name not in skip
        }
        # The gateway refuses fields the message does not define (see tools/gateway.py).
        schema["additionalProperties"] = False
        return schema

    def scalar(self, field: FieldDescriptor) -> dict[str, Any]:
        limits = _constraints(field)
        t = field.type
        if t == FieldDescriptor.TYPE_MESSAGE:
            return self.ref(field.message_type)
        if t == FieldDescriptor.TYPE_ENUM:
            return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
        if t == FieldDescriptor.TYPE_STRING:
            return {"type": "string", **{k: v for k, v in limits.items() if k not in ("minItems", "maxItems")}}
        if t == FieldDescriptor.TYPE_BYTES:
            return {"type": "string", "format": "byte"}
        if t == FieldDescriptor.TYPE_BOOL:
            return {"type": "boolean"}
        if t in _INT32:
            return {"type": "integer", "format": "int32", **_numeric(limits)}
        if t in _INT64:
            # proto3 JSON prints 64-bit integers as strings and accepts either form.
            return {
                "oneOf": [
                    {"type": "integer", "format": "int64", **_numeric(limits)},
                    {"type": "string", "pattern": "^-?[0-9]{1,19}$"},
                ]
            }
        return {"type": "number", **_numeric(limits)}

    def field(self, field: FieldDescriptor, name: str) -> dict[str, Any]:
        limits = _constraints(field)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            schema: dict[str, Any] = {"type": "object", "additionalProperties": self.scalar(value)}
        elif field.is_repeated:
            schema = {"type": "array", "items": self.scalar(field)}
            schema.update({k: v for k, v in limits.items() if k in ("minItems", "maxItems")})
        else:
            schema = self.scalar(field)
        if name in self.comments:
            if "$ref" in schema:
                schema = {"allOf": [schema]}
            schema["description"] = self.comments[name]
        return schema


def _numeric(limits: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in limits.items() if k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")}


def _status_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": (
            "google.rpc.Status: the gRPC code, a message, and one google.rpc.ErrorInfo whose `reason` "
            "(UPPER_SNAKE, stable) clients switch on."
        ),
        "properties": {
            "code": {"type": "integer"},
            "status": {"type": "string"},
            "message": {"type": "string"},
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "@type": {"type": "string"},
                        "reason": {"type": "string"},
                        "domain": {"type": "string"},
                        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
            },
        },
        "required": ["code", "message"],
    }


def _query_parameters(builder: _Builder, route: Route) -> Iterator[dict[str, Any]]:
    for field in route.method.input_type.fields:
        if field.name in route.path_params:
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.full_name not in _WELL_KNOWN:
            continue  # nested messages are not bound from the query string
        name = f"{route.method.input_type.full_name}.{field.name}"
        schema = builder.field(field, name)
        schema.pop("description", None)
        param: dict[str, Any] = {"name": field.name, "in": "query", "required": False, "schema": schema}
        if name in builder.comments:
            param["description"] = builder.comments[name]
        yield param


def document(descriptor_set: Path) -> dict[str, Any]:
    """The OpenAPI 3 document of the REST API, as a plain dict."""
    pool, fds = load_pool(descriptor_set)
    comments = _comments(fds)
    builder = _Builder(comments)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes(pool, fds):
        method = route.method
        operation: dict[str, Any] = {
            "operationId": f"{method.containing_service.name}.{method.name}",
            "tags": [method.containing_service.full_name],
        }
        full = f"{method.containing_service.full_name}.{method.name}"
        if full in comments:
            operation["summary"] = comments[full].split(". ")[0].rstrip(".")
            operation["description"] = comments[full]
        parameters: list[dict[str, Any]] = []
        for name in route.path_params:
            field = method.input_type.fields_by_name[name]
            schema = builder.scalar(field)
            parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        if route.body == "":
            parameters.extend(_query_parameters(builder, route))
        elif route.body == "*":
            skip = frozenset(route.path_params)
            schema = builder.message(method.input_type, skip) if skip else builder.ref(method.input_type)
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        else:
            field = method.input_type.fields_by_name[route.body]
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": builder.field(field, "")}},
            }
        if parameters:
            operation["parameters"] = parameters
        if route.path in PUBLIC_PATHS:
            operation["security"] = []
        operation["responses"] = {
            "200": {
                "description": "The RPC's response message.",
                "content": {"application/json": {"schema": builder.ref(method.output_type)}},
            },
            "default": {
                "description": "An error: google.rpc.Status with an ErrorInfo reason.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}},
            },
        }
        paths.setdefault(route.path, {})[route.verb] = operation
    schemas = dict(sorted(builder.schemas.items()))
    schemas["google.rpc.Status"] = _status_schema()
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "creditmeter REST API",
            "version": "v1",
            "description": (
                "Credits, usage metering, coupons and BYOK keys. Generated from protos/ by tools/openapi.py "
                "(`make protos`); served by the gateway at /api/openapi.yaml. JSON field names are the proto "
                "names; 64-bit integers are decimal strings; every error is google.rpc.Status with an "
                "ErrorInfo reason."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": schemas,
        },
    }


def render(descriptor_set: Path) -> str:
    header = "# Generated by tools/openapi.py from protos/ (`make protos`); do not edit.\n"
    return header + str(
        yaml.safe_dump(
            document(descriptor_set), sort_keys=False, allow_unicode=False, width=100, default_flow_style=False
        )
    )


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lua_pattern(template: str) -> str:
    """A Lua pattern matching the path template exactly; each {variable} is one non-empty segment."""
    out = []
    for piece in re.split(r"({[^}]*})", template):
        if piece.startswith("{"):
            out.append("[^/]+")
        else:
            out.append(re.sub(r"([%^$().\[\]*+\-?])", r"%\1", piece))
    return "^" + "".join(out) + "$"


def strict_json_tables(descriptor_set: Path) -> str:
    """The ROUTES and MESSAGES tables gateway/strict_json.lua checks bodies against (Lua source)."""
    pool, fds = load_pool(descriptor_set)
    by_verb: dict[str, list[tuple[str, str]]] = {}
    messages: dict[str, dict[str, str | int]] = {}

    def kind_of(field: FieldDescriptor) -> str | int:
        message = field.message_type
        if message is None or message.full_name.startswith("google.protobuf."):
            return 0
        if message.GetOptions().map_entry:
            value = message.fields_by_name["value"].message_type
            if value is None or value.full_name.startswith("google.protobuf."):
                return 0
            add(value)
            return f"map:{value.full_name}"
        add(message)
        return str(message.full_name)

    def add(message: Descriptor) -> None:
        if message.full_name in messages:
            return
        fields: dict[str, str | int] = {}
        messages[message.full_name] = fields
        for field in message.fields:
            fields[field.name] = fields[field.json_name] = kind_of(field)

    for route in routes(pool, fds):
        if route.body == "":
            continue
        target: Descriptor = route.method.input_type
        if route.body != "*":
            body_field = target.fields_by_name[route.body]
            if body_field.message_type is None:
                continue
            target = body_field.message_type
        add(target)
        by_verb.setdefault(route.verb.upper(), []).append((_lua_pattern(route.path), target.full_name))
    lines = ["ROUTES = {"]
    for verb, entries in sorted(by_verb.items()):
        lines.append(f"  [{_lua_string(verb)}] = {{")
        lines.extend(f"    {{ {_lua_string(p)}, {_lua_string(m)} }}," for p, m in entries)
        lines.append("  },")
    lines.append("}")
    lines.append("MESSAGES = {")
    for message_name, fields in sorted(messages.items()):
        listed = ", ".join(
            f"[{_lua_string(k)}] = {v if isinstance(v, int) else _lua_string(v)}" for k, v in sorted(fields.items())
        )
        lines.append(f"  [{_lua_string(message_name)}] = {{ {listed} }},")
    lines.append("}")
    return "\n".join(lines)
