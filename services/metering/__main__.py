"""Entry point: ``python -m services.metering``."""

import sys

from services.common.runner import run_service
from services.metering.config import MeteringSettings
from services.metering.server import create_server

if __name__ == "__main__":
    sys.exit(run_service("metering", MeteringSettings.from_env, create_server))
