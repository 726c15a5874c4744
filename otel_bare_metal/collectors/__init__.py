"""The built-in collectors, one module each.  A module here that defines ``COLLECTOR`` (an
``otel_bare_metal.registry.CollectorSpec``) is a collector: its flags, docs section and
observers follow from that one declaration (see ``registry.py``)."""
