"""gunicorn settings, read from the project root by every gunicorn started there (`make run`, `make bench`).

The application is imported once in the master and the workers are forked from it, warm: otherwise each
worker imports Django and, on its first request, the whole URL map (about 0.75 s of CPU per worker), in the
middle of the first requests it serves. Command-line options (workers, threads, bind) still apply. The access
log redacts credentials (config/access_log.py).
"""

from __future__ import annotations

import gc
from typing import Any

preload_app = True
# No write key, secret or signature in the access log (the Basic user, query strings, credential paths).
logger_class = "config.access_log.RedactingGunicornLogger"


def when_ready(server: Any) -> None:
    """In the master, before forking: load the URL map, drop any database connection, freeze the heap."""
    from django.db import connections
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - the URL map is imported on first access
    connections.close_all()  # never share a connection between forked workers
    # The preloaded modules stay alive for good: keep them out of every garbage collection in the workers.
    gc.freeze()
