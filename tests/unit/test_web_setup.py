"""The dashboard's set-up rides out a dropped download: `npm ci` is run again after a failure, a few times."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools import web


class Exits:
    """Stands in for subprocess.run: answers the given exit codes in turn and keeps every call's arguments."""

    def __init__(self, *codes: int) -> None:
        self.codes = list(codes)
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def __call__(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append((command, kwargs))
        return subprocess.CompletedProcess(command, self.codes.pop(0))


COMMAND = ["/somewhere/.venv/bin/npm", "ci", "--no-audit"]


def test_a_failed_npm_ci_is_run_again_after_each_pause_until_it_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, slept = Exits(1, 1, 0), []
    web.run_retrying(COMMAND, cwd=tmp_path, env={"A": "1"}, delays=(5.0, 15.0, 30.0), run=run, sleep=slept.append)
    assert [c for c, _ in run.calls] == [COMMAND] * 3
    assert all(kw == {"cwd": tmp_path, "env": {"A": "1"}} for _, kw in run.calls)
    assert slept == [5.0, 15.0]
    err = capsys.readouterr().err
    assert "`npm ci` failed (exit 1); retrying in 5s (attempt 2 of 4)" in err
    assert "retrying in 15s (attempt 3 of 4)" in err


def test_a_first_success_runs_once_without_a_pause(tmp_path: Path) -> None:
    run, slept = Exits(0), []
    web.run_retrying(COMMAND, cwd=tmp_path, env={}, delays=(5.0, 15.0), run=run, sleep=slept.append)
    assert len(run.calls) == 1 and slept == []


def test_the_last_failure_is_raised_with_its_exit_code(tmp_path: Path) -> None:
    run, slept = Exits(1, 2, 3, 9), []
    with pytest.raises(subprocess.CalledProcessError) as raised:
        web.run_retrying(COMMAND, cwd=tmp_path, env={}, delays=(5.0, 15.0, 30.0), run=run, sleep=slept.append)
    assert raised.value.returncode == 9 and raised.value.cmd == COMMAND
    assert len(run.calls) == 4 and slept == [5.0, 15.0, 30.0]


def test_a_failing_step_ends_with_one_clear_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(force: bool = False) -> bool:
        raise subprocess.CalledProcessError(1, ["/x/.venv/bin/npm", "ci", "--loglevel=error"])

    monkeypatch.setattr(web, "build", fail)
    monkeypatch.setattr(sys, "argv", ["tools.web", "build"])
    assert web.main() == 1
    err = capsys.readouterr().err
    assert err.startswith("[web] `npm ci` failed (exit 1)") and "Traceback" not in err
