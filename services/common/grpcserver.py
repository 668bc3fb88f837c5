"""gRPC plumbing every service shares: the handler chain (telemetry, errors, auth, validation), health, TLS.

HandlerChain wraps every handler kind — unary and streaming alike — with the
same code. Order, outermost first: telemetry (span per RPC, trace context from
metadata) → errors (domain and database errors to google.rpc.Status) → auth
(token → Principal, method policy) → validation (the request's ``buf.validate``
constraints, services.common.validation) → one retry on a dead database
connection (services.common.resilience). A method without a policy is refused.
Outgoing calls carry the service's token and the trace context (client interceptors).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.common.auth import (
    CALLERS,
    SERVICE_IDENTITIES,
    AuthError,
    Forbidden,
    JwtVerifier,
    Principal,
    TokenSource,
    bearer_from_metadata,
    current_principal,
)
from services.common.config import TlsSettings
from services.common.errors import Code, DomainError
from services.common.rpcstatus import DETAILS_KEY, status_details

log = logging.getLogger(__name__)

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]

HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIX = "/grpc.reflection."


#: Service identities that run inside the cluster. A method only they may call is internal:
#: it has no REST route and raw gRPC is not routed by the gateway (see docs/authorization.md).
IN_CLUSTER = ("svc-metering", "svc-coupons", "svc-openrouter")


@dataclass(frozen=True)
class MethodPolicy:
    """Who may call a method: anyone (``public``) or the named callers.

    Callers are ``user``, ``admin`` and service identities (``svc-metering``, …,
    see services.common.auth.SERVICE_IDENTITIES); the blanket ``service`` role
    names nobody. ``limits`` documents, per caller, the narrower condition the
    method itself enforces (e.g. users: their own account only); it is shown
    in the generated authorization matrix.
    """

    callers: frozenset[str]
    public: bool = False
    limits: tuple[tuple[str, str], ...] = ()

    @classmethod
    def allow(cls, *callers: str, limits: Mapping[str, str] | None = None) -> MethodPolicy:
        for caller in (*callers, *(limits or {})):
            if caller == "service":
                raise ValueError(
                    "the blanket 'service' role grants nothing: name the service identities that need this "
                    f"method ({', '.join(SERVICE_IDENTITIES)})"
                )
            if caller not in CALLERS:
                raise ValueError(f"unknown caller {caller!r}; callers are {', '.join(CALLERS)}")
        for caller in limits or {}:
            if caller not in callers:
                raise ValueError(f"a limit for {caller!r}, who is not allowed at all")
        return cls(callers=frozenset(callers), limits=tuple(sorted((limits or {}).items())))

    @classmethod
    def anyone(cls) -> MethodPolicy:
        return cls(callers=frozenset(), public=True)

    @property
    def internal(self) -> bool:
        """Only in-cluster services may call it: never routed through the public gateway."""
        return not self.public and bool(self.callers) and self.callers <= set(IN_CLUSTER)

    def limit_for(self, caller: str) -> str | None:
        return dict(self.limits).get(caller)


class _MetadataGetter:
    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        return [value] if value is not None else None

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


_GETTER = _MetadataGetter()


def _as_domain_error(exc: Exception, method: str) -> DomainError:
    """The client-facing error for anything a handler raised (internals are logged, never shown)."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, asyncpg.NumericValueOutOfRangeError):
        return DomainError("AMOUNT_OUT_OF_RANGE", "the amount would overflow a 64-bit balance")
    if isinstance(exc, (asyncpg.DataError, OverflowError)):
        # A value the database or the calendar cannot hold (a NUL byte, year 10000):
        # the request's fault, whatever check missed it. Logged so the gap gets a rule.
        log.warning("input out of range", extra={"rpc": method, "error": type(exc).__name__})
        return DomainError("INVALID_VALUE", "a value in the request is out of range or malformed")
    if isinstance(exc, (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)):
        return DomainError(
            "CONCURRENT_MODIFICATION", "the request conflicted with another; retry it", code=Code.ABORTED
        )
    if isinstance(exc, asyncpg.QueryCanceledError):
        # statement_timeout (DB_STATEMENT_TIMEOUT_MS) or a cancelled query.
        log.warning("database statement timed out", extra={"rpc": method})
        return DomainError(
            "DATABASE_TIMEOUT", "the database did not answer in time; retry later", code=Code.UNAVAILABLE
        )
    if isinstance(
        exc,
        (
            asyncpg.TooManyConnectionsError,
            asyncpg.PostgresConnectionError,
            asyncpg.AdminShutdownError,
            asyncpg.CannotConnectNowError,
            asyncpg.CrashShutdownError,
            OSError,
            TimeoutError,
        ),
    ):
        log.exception("database unavailable", extra={"rpc": method})
        return DomainError("DATABASE_UNAVAILABLE", "the database is unavailable; retry later", code=Code.UNAVAILABLE)
    log.exception("unhandled error", extra={"rpc": method})
    return DomainError("INTERNAL", "internal error", code=Code.INTERNAL)


async def _abort(context: grpc.aio.ServicerContext, err: DomainError, domain: str, method: str) -> None:
    """Ends the call with ``err`` as a gRPC status carrying google.rpc.ErrorInfo (raises grpc's AbortError)."""
    error_domain = err.domain if err.domain != DomainError.domain else domain
    if err.code not in (Code.INTERNAL, Code.UNAVAILABLE):
        log.info("rpc refused", extra={"rpc": method, "reason": err.reason, "code": err.code.name})
    status = grpc.StatusCode[err.code.name]
    trailer = status_details(status, err.reason, error_domain, err.message, err.metadata)
    trailers: tuple[tuple[str, str | bytes], ...] = ((DETAILS_KEY, trailer),)
    if err.metadata.get("retry_after_seconds", "").isdigit():
        # Through the gateway this becomes the HTTP Retry-After header of the 429.
        trailers += (("retry-after", err.metadata["retry_after_seconds"]),)
    await context.abort(status, err.message, trailing_metadata=trailers)


async def _responses(result: Any) -> AsyncIterator[Any]:
    """What a streaming handler sends: the items it yields, or none when it writes with context.write()."""
    if hasattr(result, "__aiter__"):
        async for item in result:
            yield item
    else:  # a handler that writes with context.write() and returns nothing
        await result


class HandlerChain:
    """What the server runs around every handler, as one layer, for every handler kind.

    Outermost first: a SERVER span continuing the caller's trace (``traceparent``)
    → errors (domain and database errors become a status carrying ErrorInfo;
    internals are logged, never shown) → authentication and the method's policy
    (token → Principal; a method without a policy is refused) → the request's
    ``buf.validate`` constraints (``check``) → the handler, unary ones behind
    ``retry`` (one retry on a dead database connection).

    The handlers are wrapped once, when they are registered (build_server), not
    per call: grpc's interceptor chain built a handler, a closure and a context
    manager per interceptor for every RPC — five per call, a large part of a
    small RPC's cost (py-spy, hot-account Deduct). The server runs with no
    interceptors, so grpc finds the wrapped handler directly.
    """

    def __init__(
        self,
        service: str,
        domain: str,
        verifier: JwtVerifier,
        policies: Mapping[str, MethodPolicy],
        *,
        check: Callable[[Any], None] | None = None,
        lenient: Callable[[Any], Any] | None = None,
        retry: Callable[[Behaviour, str], Behaviour] | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(f"creditmeter.{service}")
        self._domain = domain
        self._verifier = verifier
        self._policies = dict(policies)
        self._check = check
        self._lenient = lenient
        self._retry = retry

    async def authorize(self, method: str, metadata: Any) -> Principal | None:
        """The caller of ``method``, or the error that refuses them (None for anonymous public calls)."""
        policy = self._policies.get(method)
        if policy is None:
            raise Forbidden("METHOD_NOT_ALLOWED", "this method is not open to callers")
        try:
            token = bearer_from_metadata(metadata)
            if token is None:
                raise AuthError("TOKEN_MISSING", "a bearer token is required")
            who = await self._verifier.verify(token)
        except DomainError:
            if policy.public:
                return None  # a public method ignores credentials, as the gateway does
            raise
        if not policy.public and not (who.callers & policy.callers):
            raise Forbidden(
                "ROLE_NOT_ALLOWED",
                f"this method is open to: {', '.join(sorted(policy.callers))}",
            )
        return who

    def _around(
        self, method: str, plumbing: bool
    ) -> Callable[[grpc.aio.ServicerContext], AbstractAsyncContextManager[None]]:
        """Span, principal and error mapping around one call of ``method`` (``plumbing``: health or
        reflection, which carry no token)."""
        tracer = self._tracer
        domain = self._domain
        authorize = self.authorize
        service_name, _, rpc = method.strip("/").partition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service_name, "rpc.method": rpc}

        @contextlib.asynccontextmanager
        async def around(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            metadata = context.invocation_metadata() or ()
            carrier = {k: v for k, v in metadata if isinstance(v, str)}
            parent = propagate.extract(carrier, getter=_GETTER)  # type: ignore[arg-type]
            span_of = tracer.start_as_current_span
            with span_of(method, context=parent, kind=SpanKind.SERVER, attributes=attributes) as span:
                try:
                    try:
                        who = None if plumbing else await authorize(method, metadata)
                        reset = current_principal.set(who)
                        try:
                            yield
                            return
                        finally:
                            with contextlib.suppress(ValueError):  # a stream closed from another context
                                current_principal.reset(reset)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        # grpc's own abort() raises an exception we must let through.
                        if type(exc).__name__ == "AbortError":
                            raise
                        err = _as_domain_error(exc, method)
                    await _abort(context, err, domain, method)
                finally:
                    code = context.code()
                    if code is not None and code != grpc.StatusCode.OK:
                        span.set_attribute("rpc.grpc.status_code", code.value[0])
                        span.set_status(Status(StatusCode.ERROR, code.name))

        return around

    def wrap(self, method: str, handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler | None:
        """``handler`` with the chain run around it, whatever its kind (unary or streaming)."""
        if handler is None:
            return None
        plumbing = method.startswith(HEALTH_PREFIX) or method.startswith(REFLECTION_PREFIX)
        around = self._around(method, plumbing)
        check = None if plumbing else self._check
        deserializer = handler.request_deserializer
        if check is not None and self._lenient is not None:
            deserializer = self._lenient(deserializer)
        codec = {"request_deserializer": deserializer, "response_serializer": handler.response_serializer}
        if handler.unary_unary is not None:
            behaviour: Behaviour = handler.unary_unary
            if self._retry is not None and not plumbing:
                behaviour = self._retry(behaviour, method)

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with around(context):
                    if check is not None:
                        check(request)
                    return await behaviour(request, context)

            return grpc.unary_unary_rpc_method_handler(unary, **codec)
        if handler.unary_stream is not None:
            streaming = handler.unary_stream

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                async with around(context):
                    if check is not None:
                        check(request)
                    async for item in _responses(streaming(request, context)):
                        yield item

            return grpc.unary_stream_rpc_method_handler(unary_stream, **codec)
        # Client-streaming methods (none today) are authenticated; they would validate each message as it arrives.
        if handler.stream_unary is not None:
            collecting = handler.stream_unary

            async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                async with around(context):
                    return await collecting(requests, context)

            return grpc.stream_unary_rpc_method_handler(stream_unary, **codec)
        if handler.stream_stream is not None:
            both = handler.stream_stream

            async def stream_stream(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                async with around(context):
                    async for item in _responses(both(requests, context)):
                        yield item

            return grpc.stream_stream_rpc_method_handler(stream_stream, **codec)
        return handler


class _ChainedGeneric(grpc.GenericRpcHandler):
    """A generic handler whose method handlers come wrapped in the chain (once per method, then cached)."""

    def __init__(self, inner: grpc.GenericRpcHandler, chain: HandlerChain) -> None:
        self._inner = inner
        self._chain = chain
        self._cache: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        wrapped = self._cache.get(method)
        if wrapped is None:
            wrapped = self._chain.wrap(method, self._inner.service(handler_call_details))
            if wrapped is not None:  # only methods that exist: a caller's made-up names are not kept
                self._cache[method] = wrapped
        return wrapped


def _register_through(server: grpc.aio.Server, chain: HandlerChain) -> None:
    """Every handler later registered on ``server`` (by the generated add_*_to_server) is wrapped in ``chain``."""
    add_generic = server.add_generic_rpc_handlers
    add_registered = server.add_registered_method_handlers

    def add_generic_rpc_handlers(handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        add_generic(tuple(_ChainedGeneric(handler, chain) for handler in handlers))

    def add_registered_method_handlers(service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        wrapped = {name: chain.wrap(f"/{service_name}/{name}", h) for name, h in method_handlers.items()}
        add_registered(service_name, {name: h for name, h in wrapped.items() if h is not None})

    # The instance's own methods, replaced for this server only.
    setattr(server, "add_generic_rpc_handlers", add_generic_rpc_handlers)  # noqa: B010
    setattr(server, "add_registered_method_handlers", add_registered_method_handlers)  # noqa: B010


def principal() -> Principal:
    """The authenticated caller of the current RPC (call only from non-public methods)."""
    who = current_principal.get()
    if who is None:
        raise AuthError("TOKEN_MISSING", "a bearer token is required")
    return who


async def _outgoing_metadata(call_details: Any, tokens: TokenSource | None) -> grpc.aio.ClientCallDetails:
    metadata = list(call_details.metadata or ())
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=otel_context.get_current())
    metadata.extend(carrier.items())
    if tokens is not None and not any(k == "authorization" for k, _ in metadata):
        metadata.append(("authorization", f"Bearer {await tokens.token()}"))
    return grpc.aio.ClientCallDetails(
        call_details.method,
        call_details.timeout,
        metadata,
        call_details.credentials,
        call_details.wait_for_ready,
    )


class ClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Outgoing unary calls carry the service's bearer token and the current trace context."""

    def __init__(self, tokens: TokenSource | None) -> None:
        self._tokens = tokens

    async def intercept_unary_unary(self, continuation: Any, call_details: Any, request: Any) -> Any:
        return await continuation(await _outgoing_metadata(call_details, self._tokens), request)


class StreamClientInterceptor(
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Outgoing streaming calls carry the same token and trace context as unary ones."""

    def __init__(self, tokens: TokenSource | None) -> None:
        self._tokens = tokens

    async def intercept_unary_stream(self, continuation: Any, call_details: Any, request: Any) -> Any:
        return await continuation(await _outgoing_metadata(call_details, self._tokens), request)

    async def intercept_stream_unary(self, continuation: Any, call_details: Any, request_iterator: Any) -> Any:
        return await continuation(await _outgoing_metadata(call_details, self._tokens), request_iterator)

    async def intercept_stream_stream(self, continuation: Any, call_details: Any, request_iterator: Any) -> Any:
        return await continuation(await _outgoing_metadata(call_details, self._tokens), request_iterator)


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials | None:
    """TLS for a listening port; with a CA the client must present a certificate it signed (mTLS)."""
    if not tls.enabled:
        return None
    assert tls.cert_file is not None and tls.key_file is not None
    pair = (Path(tls.key_file).read_bytes(), Path(tls.cert_file).read_bytes())
    ca = Path(tls.ca_file).read_bytes() if tls.ca_file else None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


def channel_credentials(tls: TlsSettings) -> grpc.ChannelCredentials | None:
    """TLS for outgoing channels: the CA to trust, and this service's certificate as the client's."""
    if not tls.ca_file:
        return None
    key = Path(tls.key_file).read_bytes() if tls.key_file else None
    cert = Path(tls.cert_file).read_bytes() if tls.cert_file else None
    return grpc.ssl_channel_credentials(Path(tls.ca_file).read_bytes(), private_key=key, certificate_chain=cert)


def connect(address: str, tokens: TokenSource | None, tls: TlsSettings | None = None) -> grpc.aio.Channel:
    """A channel to another service whose calls carry this service's token and trace context (TLS by config)."""
    interceptors: list[Any] = [ClientInterceptor(tokens), StreamClientInterceptor(tokens)]
    credentials = channel_credentials(tls) if tls is not None else None
    # Reconnect within seconds of the other side coming back (gRPC's default backoff grows to 120 s, so
    # after a long outage work queued for that service — e.g. metering's outbox — would wait minutes).
    options: list[tuple[str, Any]] = [
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", 5000),
    ]
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
    if tls is not None and tls.server_name_override:
        options.append(("grpc.ssl_target_name_override", tls.server_name_override))
    return grpc.aio.secure_channel(address, credentials, options=options, interceptors=interceptors)


def listen(server: grpc.aio.Server, address: str, tls: TlsSettings) -> int:
    """Binds the server's port, with TLS when configured; returns the port (0 when binding failed)."""
    credentials = server_credentials(tls)
    if credentials is None:
        return int(server.add_insecure_port(address))
    return int(server.add_secure_port(address, credentials))


def build_server(
    service: str,
    domain: str,
    verifier: JwtVerifier,
    policies: Mapping[str, MethodPolicy],
    retry: Callable[[Behaviour, str], Behaviour] | None = None,
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """A grpc.aio server whose services, once registered, run inside the HandlerChain; health registered."""
    # Imported here: the validation module builds on this one's constants.
    from services.common.validation import check_request, lenient

    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            # Above the gateway's 60 KiB header limit, so a long (refused) query string gets
            # INVALID_ARGUMENT from validation rather than RESOURCE_EXHAUSTED without a reason.
            ("grpc.max_metadata_size", 128 * 1024),
            ("grpc.absolute_max_metadata_size", 128 * 1024),
        ],
    )
    health_servicer = health.aio.HealthServicer()
    # Health stays outside the chain: probes carry no token and need no span.
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    chain = HandlerChain(service, domain, verifier, policies, check=check_request, lenient=lenient, retry=retry)
    _register_through(server, chain)
    return server, health_servicer


async def set_serving(health_servicer: health.aio.HealthServicer, service_names: Sequence[str], serving: bool) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ("", *service_names):
        await health_servicer.set(name, status)
