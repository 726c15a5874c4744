"""The HTTP server: a transport on h11 (:mod:`.http`) and the ``--web.config.file`` it is wired to
(:mod:`.webconfig`), which the transport never imports.

The package's names are the transport's, listed once in ``http.__all__``."""

from otel_bare_metal.server import http
from otel_bare_metal.server.http import *  # noqa: F403

# Built with ``+=`` from the submodule's list: the one form of a re-exported __all__ that type
# checkers read (the typing spec's "library interface").
__all__: list[str] = []
__all__ += http.__all__
