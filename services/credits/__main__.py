"""Entry point: ``python -m services.credits``."""

from __future__ import annotations

import sys
from typing import Any

from services.common.runner import run_service
from services.credits.config import CreditsSettings
from services.credits.server import create_server


def _settings(s: Any) -> CreditsSettings:
    assert isinstance(s, CreditsSettings)
    return s


if __name__ == "__main__":
    sys.exit(
        run_service(
            "credits",
            CreditsSettings.from_env,
            lambda s: create_server(_settings(s)),
            lambda s: float(_settings(s).common.shutdown_grace_seconds),
            lambda s: _settings(s).common.log_level,
        )
    )
