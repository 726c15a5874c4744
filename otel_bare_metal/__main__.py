"""``python -m otel_bare_metal`` is the ``otel-bare-metal`` command."""

import sys

from otel_bare_metal.cli import main

sys.exit(main())
