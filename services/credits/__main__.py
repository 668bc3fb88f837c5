"""Entry point: ``python -m services.credits``."""

import sys

from services.common.runner import run_service
from services.credits.config import CreditsSettings
from services.credits.server import create_server

if __name__ == "__main__":
    sys.exit(run_service("credits", CreditsSettings.from_env, create_server))
