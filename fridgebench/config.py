"""Connection settings: env fallbacks and credential masking.

Nothing in fridgebench prints or stores a URL without passing it through :func:`mask_url`.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

ENV_REDIS_URL = "FRIDGEBENCH_REDIS_URL"
ENV_POSTGRES_DSN = "FRIDGEBENCH_POSTGRES_DSN"

_MASK = "***"
# key=value DSN form: password=secret
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
# any scheme://user:pass@host inside free text
_URL_IN_TEXT = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)([^@\s]*)(@)")


def mask_url(url: str | None) -> str:
    """Return ``url`` with any password replaced by ``***`` (URL or key=value DSN)."""
    if not url:
        return ""
    if "://" not in url:
        return _KV_PASSWORD.sub(lambda m: m.group(1) + _MASK, url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL_IN_TEXT.sub(lambda m: m.group(1) + _MASK + m.group(3), url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{_MASK}@{host}"
    query = _KV_PASSWORD.sub(lambda m: m.group(1) + _MASK, parts.query)
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing to mask: as written (urlunsplit would turn unix:///path into unix:/path)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_text(text: str) -> str:
    """Mask every URL password and ``password=`` pair found anywhere in free text."""
    text = _URL_IN_TEXT.sub(lambda m: m.group(1) + _MASK + m.group(3), text)
    return _KV_PASSWORD.sub(lambda m: m.group(1) + _MASK, text)


def env_redis_url() -> str | None:
    return os.environ.get(ENV_REDIS_URL) or None


def env_postgres_dsn() -> str | None:
    return os.environ.get(ENV_POSTGRES_DSN) or None
