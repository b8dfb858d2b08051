"""Run profiles: ``python -m services.profiles``."""

import uvicorn

from services.profiles.app import create_app
from services.profiles.config import ProfilesSettings

if __name__ == "__main__":
    settings = ProfilesSettings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)
