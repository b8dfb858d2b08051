"""Run enrichment: ``python -m services.enrichment``."""

import uvicorn

from services.enrichment.app import create_app
from services.enrichment.config import EnrichmentSettings

if __name__ == "__main__":
    settings = EnrichmentSettings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)
