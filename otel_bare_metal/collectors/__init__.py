"""The built-in collectors, one folder each, shaped like a plugin (``examples/cpufreq``).

A package here whose ``__init__.py`` defines ``COLLECTOR`` (an
``otel_bare_metal.registry.CollectorSpec``) is a collector: its flags, docs section, metrics
and observers follow from that one declaration (see ``registry.py``).  Inside the folder:
``__init__.py`` the spec, ``metrics.py`` the metric rows beside the observers that emit them,
and the source modules, which read the machine and never import OpenTelemetry.
"""
