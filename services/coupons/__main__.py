"""Entry point: ``python -m services.coupons``."""

import sys

from services.common.runner import run_service
from services.coupons.config import CouponsSettings
from services.coupons.server import create_server

if __name__ == "__main__":
    sys.exit(run_service("coupons", CouponsSettings.from_env, create_server))
