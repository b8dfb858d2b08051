"""Run ingest: ``python -m services.ingest``."""

import uvicorn

from services.ingest.app import create_app
from services.ingest.config import IngestSettings

if __name__ == "__main__":
    settings = IngestSettings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)
