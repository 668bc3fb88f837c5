"""Entry point: ``python -m services.openrouter``."""

import sys

from services.common.runner import run_service
from services.openrouter.config import OpenRouterSettings
from services.openrouter.server import create_server

if __name__ == "__main__":
    sys.exit(run_service("openrouter", OpenRouterSettings.from_env, create_server))
