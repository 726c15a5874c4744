"""otel-bare-metal: host and HDHomeRun metrics through OpenTelemetry.

The package is layered (see docs/architecture.md):

* ``sources``     read the machine or a device and return plain records; never import opentelemetry.
* ``hdhomerun``   the HDHomeRun protocol client, simulator and tools (a source too).
* ``telemetry``   map records to OpenTelemetry observable instruments, from one definitions table.
* ``exposition``  how metrics leave the process: the Prometheus ``/metrics`` page (and OTLP push).
* ``app`` / ``cli``  wire the layers together from command-line flags and the environment.
"""

__version__ = "0.1.0"
