"""The medpolicy HTTP service (FastAPI on uvicorn): `create_app(settings)` and `run.serve(...)`."""

from medpolicy.service.app import create_app
from medpolicy.service.settings import ClientConfig, Settings

__all__ = ["ClientConfig", "Settings", "create_app"]
