"""Run identity: ``python -m services.identity``."""

import uvicorn

from services.identity.app import create_app
from services.identity.config import IdentitySettings

if __name__ == "__main__":
    settings = IdentitySettings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)
