"""deploy/ offline: every manifest valid against the Kubernetes schemas, secrets only referenced, policies in place."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICES = ("credits", "coupons", "openrouter", "metering")


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((path.name, document))
    return found


DOCUMENTS = _documents()


@pytest.mark.parametrize(
    "document", [d for _, d in DOCUMENTS], ids=[f"{n}:{d['kind']}/{d['metadata']['name']}" for n, d in DOCUMENTS]
)
def test_every_manifest_is_valid_for_kubernetes(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    on_disk = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk


def test_no_secret_is_inlined() -> None:
    assert not [d for _, d in DOCUMENTS if d["kind"] == "Secret"], "Secrets are created out of band, never committed"
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert "secretGenerator" not in kustomization


def _containers() -> list[dict[str, Any]]:
    return [c for _, d in DOCUMENTS if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]]


def test_secrets_reach_services_as_files_not_environment() -> None:
    for container in _containers():
        for variable in container.get("env", []):
            assert "secretKeyRef" not in variable.get("valueFrom", {}), (container["name"], variable["name"])
            name = variable["name"]
            if any(word in name for word in ("KEY", "SECRET", "PASSWORD", "DATABASE_URL", "TOKEN")):
                assert name.endswith("_FILE") or name == "AUTH_TOKEN_URL", (container["name"], name)


def test_every_service_serves_mtls_and_has_its_own_credentials() -> None:
    by_name = {c["name"]: c for c in _containers()}
    for service in SERVICES:
        env = {v["name"]: v.get("value") for v in by_name[service]["env"]}
        assert {"GRPC_TLS_CERT_FILE", "GRPC_TLS_KEY_FILE", "GRPC_TLS_CA_FILE"} <= set(env), service
        if service != "credits":  # credits calls nobody
            assert env["AUTH_CLIENT_ID"] == f"svc-{service}"
    # The gateway's config, as its init container renders it at pod start: mTLS to every service.
    keycloak = {
        "AUTH_ISSUER": "https://keycloak.example.com/realms/creditmeter",
        "AUTH_JWKS_URL": "https://keycloak.example.com/realms/creditmeter/protocol/openid-connect/certs",
        "AUTH_AUDIENCE": "creditmeter",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "DASHBOARD_"))} | keycloak
    gateway_config = subprocess.run(
        [sys.executable, "-m", "tools.gateway", "--kubernetes"],
        cwd=ROOT,
        env=env | {"PYTHONPATH": f"{ROOT}:{ROOT / 'gen' / 'python'}"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert gateway_config.count("UpstreamTlsContext") >= len(SERVICES)


def test_network_policies_let_only_the_gateway_in_and_only_services_reach_postgresql() -> None:
    policies = {d["metadata"]["name"]: d["spec"] for _, d in DOCUMENTS if d["kind"] == "NetworkPolicy"}
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}

    def sources(spec: dict[str, Any]) -> set[str]:
        names: set[str] = set()
        for rule in spec.get("ingress", []):
            for peer in rule.get("from", []):
                selector = peer["podSelector"]
                names |= set(selector.get("matchLabels", {}).values())
                for expression in selector.get("matchExpressions", []):
                    names |= set(expression["values"])
        return names

    assert sources(policies["metering-ingress"]) == {"gateway"}
    assert sources(policies["coupons-ingress"]) == {"gateway"}
    assert sources(policies["openrouter-ingress"]) == {"gateway", "metering"}
    assert sources(policies["credits-ingress"]) == {"gateway", "metering", "coupons", "openrouter"}
    assert sources(policies["postgresql-ingress"]) == set(SERVICES)
    # The gateway's egress names no database port: it cannot reach PostgreSQL even outside the cluster.
    egress_ports = {p["port"] for rule in policies["gateway-egress"]["egress"] for p in rule.get("ports", [])}
    assert egress_ports == {50051, 50052, 50053, 50054, 443, 53}
