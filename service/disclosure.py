"""What the service may show about its bundles: provenance without addresses or credentials.

A bundle's provenance records how it was trained, including the pipeline config; some of those values (the LLM
``base_url``, a proxy, a database host) are internal addresses, and some could be credentials. ``/v1/models``
shows provenance through ``public_provenance``, which replaces any such value with ``REDACTED`` whoever asks.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"
# Key names whose values are addresses or secrets, wherever they appear (matched on the lower-cased key).
_SECRET_KEY = re.compile(r"(url|uri|host|hostname|endpoint|address|proxy|dsn|token|secret|password|api_?key)s?$")
# Values that are addresses whatever their key: a URL, or an IPv4 address (with an optional port).
_ADDRESS_VALUE = re.compile(r"[a-z][a-z0-9+.-]*://|^\d{1,3}(\.\d{1,3}){3}(:\d+)?$", re.IGNORECASE)


def public_provenance(value: Any) -> Any:
    """``value`` (a provenance mapping) with every address- or secret-like value replaced by ``REDACTED``."""
    if isinstance(value, dict):
        return {
            key: REDACTED if _SECRET_KEY.search(str(key).lower()) and item is not None else public_provenance(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [public_provenance(item) for item in value]
    if isinstance(value, str) and _ADDRESS_VALUE.search(value):
        return REDACTED
    return value
