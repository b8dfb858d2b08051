"""The image's HEALTHCHECK, ``python -m services.healthcheck [URL...]``: exit 0 when the service in this container
answers 200 on its readiness URL, else 1 with the reason on stderr.

Every service runs from the same image, so by default it asks each service's ``/health/ready`` on loopback at the
port its settings would use (``CONTACTS_<SERVICE>_HTTP_PORT``, else the default below); only the one running in
this container answers. Standard library only: it runs every few seconds and must stay cheap."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

# Each service's default HTTP port (services/<service>/config.py; a test keeps them equal).
DEFAULT_PORTS = {"ingest": 8001, "profiles": 8002, "enrichment": 8003, "identity": 8004}


def readiness_urls(environ: dict[str, str]) -> list[str]:
    ports = [environ.get(f"CONTACTS_{service.upper()}_HTTP_PORT", str(port)) for service, port in DEFAULT_PORTS.items()]
    return [f"http://127.0.0.1:{port}/health/ready" for port in ports]


def check(urls: Sequence[str], *, timeout: float = 3.0) -> tuple[bool, str]:
    """Healthy when one of ``urls`` answers 200; otherwise what each said."""
    failures = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return True, f"{url}: {response.status}"
        except urllib.error.HTTPError as error:
            failures.append(f"{url}: {error.code} {error.read(300).decode(errors='replace')}")
        except (urllib.error.URLError, OSError) as error:
            failures.append(f"{url}: {getattr(error, 'reason', error)}")
    return False, "; ".join(failures)


def main(argv: Sequence[str] | None = None) -> int:
    urls = list(sys.argv[1:] if argv is None else argv) or readiness_urls(dict(os.environ))
    healthy, detail = check(urls)
    print(detail, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
