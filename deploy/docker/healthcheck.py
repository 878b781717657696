"""Container HEALTHCHECK: exit 0 when the service's liveness endpoint answers 200, 1 otherwise.

Standard library only (the image has no curl). Kubernetes ignores Docker health checks and uses the probes in
deploy/k8s; this is for `docker run` and Compose.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/healthz"


def check(url: str, timeout_s: float) -> tuple[bool, str]:
    """Return (healthy, reason) for one GET of ``url``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        return False, f"{url} answered {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return False, f"{url} unreachable: {error}"
    if status != 200:
        return False, f"{url} answered {status}"
    return True, f"{url} answered 200"


def main() -> int:
    url = os.environ.get("DANMAKU_HEALTHCHECK_URL", DEFAULT_URL)
    timeout_s = float(os.environ.get("DANMAKU_HEALTHCHECK_TIMEOUT_S", "3"))
    healthy, reason = check(url, timeout_s)
    print(reason, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
