"""The one ServiceKind (creditmeter.common.v1) and the plain names stored in the databases.

Metering records a usage under a service and openrouter prices it under the
same enum, so the only conversion left is between the proto value and the
short name kept in rows and domain code ("LLM" for SERVICE_KIND_LLM).
"""

from __future__ import annotations

from creditmeter.common.v1 import service_kind_pb2 as pb

PREFIX = "SERVICE_KIND_"
#: Proto value → short name, built once: the enum wrapper rebuilds its value list on every lookup, and
#: metering looks up every event of every batch.
_NAME_OF: dict[int, str] = {v: k.removeprefix(PREFIX) for k, v in pb.ServiceKind.items() if v}
#: Every known service's short name, in declaration order.
NAMES: tuple[str, ...] = tuple(_NAME_OF.values())


def name_of(value: int) -> str | None:
    """The short name of a proto value; None when unset or unknown (callers refuse it)."""
    return _NAME_OF.get(value)


def value_of(name: str) -> pb.ServiceKind.ValueType:
    """The proto value of a stored short name."""
    return pb.ServiceKind.Value(PREFIX + name)
