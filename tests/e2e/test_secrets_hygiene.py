"""A full run with every kind of secret in use: none shows in a log, on a command line, or in a child's environment.

Secrets exercised: the OpenRouter management key (key provisioning at the
fake OpenRouter), a BYOK key (validated, stored encrypted, then a wrong one
refused), the Fernet keys (two, for rotation: every key stored is encrypted
with them, and a rotation re-encrypts), the token signing key, and a bearer
token.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from pathlib import Path

import httpx
import psutil

from services.common.auth import ensure_dev_keys
from services.openrouter.crypto import generate_key
from tests.conftest import Postgres
from tests.e2e.conftest import Stack, run_stack


def _fake_url(stack: Stack) -> str:
    for line in stack.output:
        found = re.search(r"FAKE OpenRouter on (127\.0\.0\.1:\d+)", line)
        if found:
            return f"http://{found.group(1)}"
    raise AssertionError("the stack did not announce its fake OpenRouter")


def _pem_body_lines(path: Path) -> list[str]:
    """The base64 lines of a PEM private key: any one of them in a log would be a leak."""
    return [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]


def _descendants(stack_pid: int) -> list[psutil.Process]:
    return psutil.Process(stack_pid).children(recursive=True)


async def _exercise(stack: Stack, byok: str) -> str:
    user = f"sec-{uuid.uuid4().hex[:10]}"
    me = stack.headers(user, "user")
    admin = stack.headers("ops", "admin")
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as http:
        created = await http.post("/api/v1/openrouter/create-account", headers=me, json={})
        assert created.status_code == 200, created.text
        upgraded = await http.post(
            "/api/v1/credits/tier",
            headers=admin,
            json={"user_id": user, "tier": "starter", "request_id": uuid.uuid4().hex},
        )
        assert upgraded.status_code == 200, upgraded.text
        registered = await http.post(f"{_fake_url(stack)}/_fake/byok", json={"key": byok})
        assert registered.status_code == 200
        stored = await http.put(
            "/api/v1/openrouter/byok", headers=me, json={"api_key": byok, "request_id": uuid.uuid4().hex}
        )
        assert stored.status_code == 200, stored.text
        assert byok not in stored.text
        wrong = await http.put(
            "/api/v1/openrouter/byok", headers=me, json={"api_key": byok[:-4] + "zzzz", "request_id": uuid.uuid4().hex}
        )
        assert wrong.status_code == 400 and byok[:-4] not in wrong.text
        rotated = await http.post(
            "/api/v1/openrouter/keys/rotate", headers=admin, json={"request_id": uuid.uuid4().hex}
        )
        assert rotated.status_code == 200, rotated.text
        account = await http.get("/api/v1/openrouter/account", headers=me)
        assert account.status_code == 200 and byok not in account.text
    return me["authorization"].removeprefix("Bearer ")


async def test_no_secret_in_logs_command_lines_or_environments(postgres: Postgres, tmp_path: Path) -> None:
    database = await postgres.database("e2e_secrets")
    local = tmp_path / "local"
    signing_key, _ = ensure_dev_keys(local / "dev-auth")
    fernet = [generate_key(), generate_key()]
    byok = "sk-or-v1-" + secrets.token_hex(32)
    # Handed to the stack the way an operator would: in its own environment. It must pass them on as files.
    with run_stack(database, local, OPENROUTER_FERNET_KEYS=",".join(fernet)) as stack:
        bearer = await _exercise(stack, byok)
        stack_pid = next(
            p.pid
            for p in psutil.process_iter(["cmdline", "environ"])
            if (p.info["cmdline"] or [])[-2:] == ["-m", "tools.stack"]
            and (p.info["environ"] or {}).get("CREDITMETER_LOCAL_DIR") == str(local)
        )
        children = _descendants(stack_pid)
        management = (local / "secrets" / "fake-management-key").read_text().strip()
        assert (local / "secrets" / "fernet-keys").stat().st_mode & 0o077 == 0
        secret_values = {
            "management key": management,
            "BYOK key": byok,
            "Fernet key 1": fernet[0],
            "Fernet key 2": fernet[1],
            "bearer token": bearer,
            **{f"signing key line {n}": line for n, line in enumerate(_pem_body_lines(signing_key))},
        }
        names = {p.pid: " ".join(p.cmdline()) for p in children}
        assert {"fake_openrouter", "services.credits", "services.openrouter", "envoy"} <= {
            word
            for cmd in names.values()
            for word in ("fake_openrouter", "services.credits", "services.openrouter", "envoy")
            if word in cmd
        }
        for process in children:
            command = " ".join(process.cmdline())
            environment = "\n".join(f"{k}={v}" for k, v in process.environ().items())
            for label, value in secret_values.items():
                assert value not in command, f"{label} on the command line of {command}"
                assert value not in environment, f"{label} in the environment of {command}"
            if "services.openrouter" not in command:
                assert "OPENROUTER_FERNET_KEYS_FILE" not in environment, command
                assert "OPENROUTER_MANAGEMENT_KEY_FILE" not in environment, command
            if "services." not in command:
                assert "DATABASE_URL" not in environment, f"the database URL reaches {command}"
        ps = await asyncio.create_subprocess_exec("ps", "-eo", "args", stdout=asyncio.subprocess.PIPE)
        listing = (await ps.communicate())[0].decode()
        assert ps.returncode == 0 and "tools.stack" in listing
        for label, value in secret_values.items():
            assert value not in listing, f"{label} visible in ps"
    logs = "".join(stack.output)
    assert "model catalog synced" in logs and "[envoy]" in logs  # the logs are really there
    for label, value in secret_values.items():
        assert value not in logs, f"{label} appears in the logs"
