"""Run the lag monitor: ``python -m services.monitor``."""

import uvicorn

from services.monitor.app import create_app
from services.monitor.config import MonitorSettings

if __name__ == "__main__":
    settings = MonitorSettings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)
