"""Renders the Envoy gateway config from gateway/envoy.template.yaml.

Local runs validate tokens against a JWKS file; with a JWKS URL (Keycloak's
``…/realms/<realm>/protocol/openid-connect/certs``) Envoy fetches and caches
the keys itself through a cluster of its own. ``python -m tools.gateway
--kubernetes`` prints the form deploy/ uses (upstreams by service DNS name);
the gateway's init container runs it at pod start with ``--web-dist`` (the
dashboard built into the image) and ``--serve-root`` (where it copied those
files for Envoy), so the routes always name exactly the files the pod has.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from services.common.config import AuthSettings, ConfigError, Env

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "gateway" / "envoy.template.yaml"
LOCAL_STRICT_JSON = ROOT / "gen" / "gateway" / "strict_json.lua"


def _jwks(auth: AuthSettings) -> tuple[str, str]:
    """(the provider's key source, extra cluster definitions) as YAML flow text."""
    if auth.jwks_url:
        parts = urlsplit(auth.jwks_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"AUTH_JWKS_URL must be an http(s) URL, got {auth.jwks_url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        source = {
            "remote_jwks": {
                "http_uri": {"uri": auth.jwks_url, "cluster": "jwks_provider", "timeout": "5s"},
                "cache_duration": "300s",
                "async_fetch": {"fast_listener": False},
                "retry_policy": {"num_retries": 3},
            }
        }
        cluster: dict[str, object] = {
            "name": "jwks_provider",
            "type": "STRICT_DNS",
            "connect_timeout": "5s",
            "load_assignment": {
                "cluster_name": "jwks_provider",
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {
                                "endpoint": {
                                    "address": {"socket_address": {"address": parts.hostname, "port_value": port}}
                                }
                            }
                        ]
                    }
                ],
            },
        }
        if parts.scheme == "https":
            cluster["transport_socket"] = {
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                    "sni": parts.hostname,
                },
            }
        return f"remote_jwks: {json.dumps(source['remote_jwks'])}", f"- {json.dumps(cluster)}"
    assert auth.jwks_file is not None
    return f"local_jwks: {json.dumps({'filename': str(Path(auth.jwks_file).resolve())})}", ""


def _cluster(name: str, host: str, port: int) -> dict[str, Any]:
    """A plain HTTP/1 upstream cluster."""
    return {
        "name": name,
        "type": "STRICT_DNS",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}
            ],
        },
    }


@dataclass(frozen=True)
class RateLimits:
    """Envoy's local rate limits (token buckets per Envoy instance; 0 requests per second turns one off).

    A coarse flood guard in front of everything else; the per-user and per-client-address attempt
    limits on coupon codes are the coupons service's (database counters shared by every replica).
    """

    #: The public API as a whole (GATEWAY_RATE_LIMIT_RPS / GATEWAY_RATE_LIMIT_BURST). A flood guard, set
    #: above what one Envoy and the services behind it serve on a small box (~2,000 req/s on 2 cores for
    #: the cheapest route), so that it refuses floods, never ordinary peak traffic.
    api_per_second: int = 5000
    api_burst: int = 10000
    #: Coupon validation and redemption (GATEWAY_COUPON_RATE_LIMIT_RPS / …_BURST).
    coupon_per_second: int = 100
    coupon_burst: int = 200
    #: Proxies in front of Envoy whose x-forwarded-for entries are trusted (GATEWAY_XFF_TRUSTED_HOPS):
    #: 0 when Envoy is the edge (make run), 1 behind one cloud load balancer.
    xff_trusted_hops: int = 0
    #: Open client connections one Envoy accepts at once (GATEWAY_MAX_CONNECTIONS).
    max_connections: int = 10000

    @classmethod
    def from_env(cls, env: Env) -> RateLimits:
        return cls(
            api_per_second=env.integer("GATEWAY_RATE_LIMIT_RPS", cls.api_per_second, minimum=0),
            api_burst=env.integer("GATEWAY_RATE_LIMIT_BURST", cls.api_burst, minimum=1),
            coupon_per_second=env.integer("GATEWAY_COUPON_RATE_LIMIT_RPS", cls.coupon_per_second, minimum=0),
            coupon_burst=env.integer("GATEWAY_COUPON_RATE_LIMIT_BURST", cls.coupon_burst, minimum=1),
            xff_trusted_hops=env.integer("GATEWAY_XFF_TRUSTED_HOPS", cls.xff_trusted_hops, minimum=0, maximum=10),
            max_connections=env.integer("GATEWAY_MAX_CONNECTIONS", cls.max_connections, minimum=1),
        )


def _bucket(name: str, per_second: int, burst: int) -> str:
    """A per-route LocalRateLimit as YAML flow text: ``burst`` tokens, refilled at ``per_second``.

    Envoy requires a bucket on every per-route config, so "off" (0 per second) is a bucket that is
    neither enabled nor enforced."""
    share = {"default_value": {"numerator": 100 if per_second > 0 else 0, "denominator": "HUNDRED"}}
    config = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": name,
        "token_bucket": {"max_tokens": max(burst, 1), "tokens_per_fill": max(per_second, 1), "fill_interval": "1s"},
        "filter_enabled": share,
        "filter_enforced": share,
        "response_headers_to_add": [{"header": {"key": "retry-after", "value": "1"}}],
    }
    return json.dumps(config)


@dataclass(frozen=True)
class UpstreamTls:
    """mTLS from the gateway to the services: its client certificate and the CA that signed theirs."""

    cert_file: str
    key_file: str
    ca_file: str


def _upstream_tls(tls: UpstreamTls | None, host: str) -> str:
    """A cluster's transport_socket (YAML flow text), or nothing for plaintext upstreams."""
    if tls is None:
        return ""
    socket = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": host,
            "common_tls_context": {
                "tls_certificates": [
                    {"certificate_chain": {"filename": tls.cert_file}, "private_key": {"filename": tls.key_file}}
                ],
                "validation_context": {
                    "trusted_ca": {"filename": tls.ca_file},
                    "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": host}}],
                },
            },
        },
    }
    return f"transport_socket: {json.dumps(socket)}"


def _lua_audiences(audiences: tuple[str, ...]) -> str:
    """A Lua set literal of the accepted audiences (JSON string escapes are valid Lua)."""
    return "{" + ", ".join(f"[{json.dumps(a)}] = true" for a in audiences) + "}"


def render(
    *,
    auth: AuthSettings,
    gateway_host: str,
    gateway_port: int,
    admin_port: int,
    upstreams: dict[str, tuple[str, int]],
    descriptor: str = str(ROOT / "gen" / "descriptors" / "creditmeter.pb"),
    web_routes: list[dict[str, Any]] | None = None,
    dev_signin: tuple[str, int] | None = None,
    openapi: str = str(ROOT / "docs" / "openapi.yaml"),
    strict_json: str = str(LOCAL_STRICT_JSON),
    limits: RateLimits | None = None,
    upstream_tls: UpstreamTls | None = None,
) -> str:
    """The Envoy config. ``web_routes`` (tools.web.routes) serve the dashboard; ``dev_signin``
    routes /dev/ to the development sign-in server, which only tools.stack ever passes, and
    only when it generated its own development signing keys — never the Kubernetes form."""
    source, clusters = _jwks(auth)
    extra_routes = list(web_routes or [])
    if dev_signin is not None:
        extra_routes.insert(0, {"match": {"prefix": "/dev/"}, "route": {"cluster": "dev_signin", "timeout": "10s"}})
        clusters += "\n  - " + json.dumps(_cluster("dev_signin", *dev_signin))
    # The transcoder refuses paths it cannot map to an RPC: not the dashboard's business.
    bypass = {
        "envoy.filters.http.grpc_json_transcoder": {
            "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
            "disabled": True,
        }
    }
    web = "\n              ".join(
        "- " + json.dumps({**route, "typed_per_filter_config": bypass}) for route in extra_routes
    )
    if limits is None:
        limits = RateLimits.from_env(Env())
    return string.Template(TEMPLATE.read_text()).substitute(
        ADMIN_PORT=admin_port,
        GATEWAY_HOST=gateway_host,
        GATEWAY_PORT=gateway_port,
        AUTH_ISSUER=auth.issuer,
        AUTH_AUDIENCES_JSON=json.dumps(list(auth.audiences)),
        AUTH_AUDIENCES_LUA=_lua_audiences(auth.audiences),
        AUTH_LEEWAY_SECONDS=auth.leeway_seconds,
        **{f"{name.upper()}_TLS": _upstream_tls(upstream_tls, host) for name, (host, _) in upstreams.items()},
        JWKS_SOURCE=source,
        EXTRA_CLUSTERS=clusters,
        DESCRIPTOR_FILE=descriptor,
        WEB_ROUTES=web,
        MAX_DIRECT_RESPONSE_BYTES=16 * 1024 * 1024,
        OPENAPI_FILE=openapi,
        STRICT_JSON_LUA=json.dumps({"filename": strict_json}),
        XFF_TRUSTED_HOPS=limits.xff_trusted_hops,
        MAX_CONNECTIONS=limits.max_connections,
        API_RATE_LIMIT=_bucket("api", limits.api_per_second, limits.api_burst),
        COUPON_RATE_LIMIT=_bucket("coupons", limits.coupon_per_second, limits.coupon_burst),
        **{f"{name.upper()}_HOST": host for name, (host, _) in upstreams.items()},
        **{f"{name.upper()}_PORT": port for name, (_, port) in upstreams.items()},
    )


def _dashboard(env: Env, dist: Path | None, serve_root: Path | None) -> list[dict[str, Any]] | None:
    """The dashboard's routes for the in-cluster form: files of ``dist`` that Envoy reads from ``serve_root``
    (where the init container copied them). Never the development sign-in."""
    if dist is None:
        return None
    from tools import web

    if not (dist / "index.html").exists():
        raise ConfigError(f"no built dashboard in {dist} (index.html is missing)")
    return web.dashboard_routes(env, dev_signin=False, dist=dist, serve_root=serve_root)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubernetes", action="store_true", help="render the in-cluster form for deploy/")
    parser.add_argument("--web-dist", type=Path, help="serve the dashboard built in this folder")
    parser.add_argument("--serve-root", type=Path, help="where Envoy finds the dashboard's files (default: --web-dist)")
    opts = parser.parse_args()
    env = Env()
    try:
        auth = AuthSettings.from_env(env)
        web_routes = _dashboard(env, opts.web_dist, opts.serve_root)
        text = render(
            auth=auth,
            gateway_host="0.0.0.0",
            gateway_port=8080,
            admin_port=9901,
            upstreams={
                "credits": (env.text("CREDITS_UPSTREAM_HOST", "credits.creditmeter.svc"), 50051),
                "coupons": (env.text("COUPONS_UPSTREAM_HOST", "coupons.creditmeter.svc"), 50053),
                "openrouter": (env.text("OPENROUTER_UPSTREAM_HOST", "openrouter.creditmeter.svc"), 50054),
                "metering": (env.text("METERING_UPSTREAM_HOST", "metering.creditmeter.svc"), 50052),
            },
            descriptor="/etc/creditmeter/creditmeter.pb",
            openapi="/etc/creditmeter/openapi.yaml",
            strict_json="/etc/creditmeter/strict_json.lua",
            # deploy/: the gateway's client certificate and the cluster CA, from the Secret
            # gateway-tls mounted at /etc/creditmeter/tls (never inlined in the config).
            upstream_tls=UpstreamTls(
                "/etc/creditmeter/tls/tls.crt", "/etc/creditmeter/tls/tls.key", "/etc/creditmeter/tls/ca.crt"
            ),
            web_routes=web_routes,
        )
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
