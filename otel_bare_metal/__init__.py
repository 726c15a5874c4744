"""otel-bare-metal: host and HDHomeRun metrics through OpenTelemetry.

The package is layered (see docs/architecture.md):

* ``collectors``  one folder per built-in collector: its spec, its source (which never imports
  opentelemetry) and its metric rows beside the observers that emit them.
* ``procfs``, ``hdhr``  libraries the collectors read through: Linux procfs files, and the
  HDHomeRun device protocol (client, discover, simulator, tools); they know nothing of metrics.
* ``telemetry``   generic machinery: runs every source under one deadline, registers the
  instruments, classic names, the MeterProvider and resource.
* ``exposition``  how metrics leave the process: the Prometheus ``/metrics`` page (and OTLP push).
* ``app`` / ``cli``  wire the layers together from command-line flags and the environment.
"""

__version__ = "0.1.0"
