"""The fast text encoder and the stock path give the same bytes for every Accept header a
Prometheus server sends (2.x and 3.x defaults, every ``escaping`` value); where the fast encoder
cannot (``dots``, ``values``) the page falls back to the stock path.

The Prometheus 3 headers are built the way Prometheus's ``acceptHeader`` builds them
(scrape/scrape.go: each configured protocol's media type from config.ScrapeProtocolsHeaders,
``;escaping=<metric_name_escaping_scheme>`` on the 1.0.0 text formats, ``;q=0.<weight>``
counting down from 6, then ``*/*``); 3.0 put the escaping on every entry.  The Prometheus 2.42
header is the one Debian's Prometheus really sends (captured live below).
"""

from __future__ import annotations

import http.server
import subprocess
import threading
import time

import pytest
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client.exposition import choose_encoder

from helpers import free_port
from otel_bare_metal.exposition.prometheus import PrometheusPage, fast_format

ESCAPINGS = ("allow-utf-8", "underscores", "dots", "values")
PROM_2_42 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
PROM_2_49 = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"


def prom3(escaping: str) -> str:
    """Prometheus 3.x's default (DefaultScrapeProtocols) with metric_name_escaping_scheme=escaping."""
    return (f"application/openmetrics-text;version=1.0.0;escaping={escaping};q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,"
            f"text/plain;version=1.0.0;escaping={escaping};q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2")


def prom3_0(escaping: str) -> str:
    """Prometheus 3.0: the escaping parameter on every entry."""
    return (f"application/openmetrics-text;version=1.0.0;escaping={escaping};q=0.6,"
            f"application/openmetrics-text;version=0.0.1;escaping={escaping};q=0.5,"
            f"text/plain;version=1.0.0;escaping={escaping};q=0.4,text/plain;version=0.0.4;escaping={escaping};q=0.3,*/*;q=0.2")


# (name, Accept header, content type expected, whether the fast encoder serves it)
TABLE = [
    ("no Accept header", "", "text/plain; version=0.0.4; charset=utf-8", True),
    ("curl */*", "*/*", "text/plain; version=0.0.4; charset=utf-8", True),
    ("browser", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/plain; version=0.0.4; charset=utf-8", True),
    ("Prometheus 2.42 (Debian)", PROM_2_42, "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores", True),
    ("Prometheus 2.49-2.55 default", PROM_2_49, "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores", True),
    ("Prometheus 2 text 0.0.4 only", "text/plain;version=0.0.4;q=0.5,*/*;q=0.4", "text/plain; version=0.0.4; charset=utf-8", True),
    *[(f"Prometheus 3.x default, escaping={e}", prom3(e),
       f"application/openmetrics-text; version=1.0.0; charset=utf-8; escaping={e}", e in ("allow-utf-8", "underscores"))
      for e in ESCAPINGS],
    *[(f"Prometheus 3.0 default, escaping={e}", prom3_0(e),
       f"application/openmetrics-text; version=1.0.0; charset=utf-8; escaping={e}", e in ("allow-utf-8", "underscores"))
      for e in ESCAPINGS],
    *[(f"Prometheus 3 PrometheusText1.0.0 only, escaping={e}", f"text/plain;version=1.0.0;escaping={e};q=0.6,*/*;q=0.5",
       f"text/plain; version=1.0.0; charset=utf-8; escaping={e}", e in ("allow-utf-8", "underscores"))
      for e in ESCAPINGS],
    ("Prometheus 3 PrometheusText0.0.4 only", "text/plain;version=0.0.4;q=0.6,*/*;q=0.5", "text/plain; version=0.0.4; charset=utf-8", True),
    ("OpenMetrics 1.0.0, no escaping", "application/openmetrics-text;version=1.0.0",
     "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores", True),
    ("OpenMetrics, no version", "application/openmetrics-text", "application/openmetrics-text; version=1.0.0; charset=utf-8", True),
    ("unknown escaping value", "application/openmetrics-text;version=1.0.0;escaping=bogus",
     "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores", True),
]


def _render_both(accept: str) -> tuple[tuple[bytes, str], tuple[bytes, str]]:
    out = []
    for fast in (True, False):
        page = PrometheusPage()
        if not fast:
            page._fast = None
        resource = Resource.create({"service.name": "t", "a.b": "x\"y", "host.name": "h\nx"})
        provider = MeterProvider(resource=resource, metric_readers=[page.reader])
        meter = provider.get_meter("t")
        meter.create_observable_counter("system.cpu.time", unit="s", description="CPU \\ time\nsecond line",
                                        callbacks=[lambda o: [Observation(1.5, {"cpu.mode": "user", "cpu.logical_number": 0})]])
        meter.create_observable_gauge("system.filesystem.usage", unit="By", description="usage",
                                      callbacks=[lambda o: [Observation(10, {"system.filesystem.mountpoint": '/mnt/"q"\\é'})]])
        meter.create_observable_up_down_counter("plain_name", description="no unit",
                                                callbacks=[lambda o: [Observation(3)]])
        page.render(accept)  # fill the caches, then compare the second render
        out.append(page.render(accept))
        provider.shutdown()
    return out[0], out[1]


@pytest.mark.parametrize("name,accept,content_type,fast", TABLE, ids=[row[0] for row in TABLE])
def test_fast_path_matches_the_stock_path_for_every_accept_header(name, accept, content_type, fast):
    encoder, chosen = choose_encoder(accept)
    assert chosen == content_type
    assert (fast_format(encoder) is not None) == fast, f"{name}: fast path {'expected' if fast else 'must not be used'}"
    (fast_body, fast_type), (stock_body, stock_type) = _render_both(accept)
    assert fast_type == stock_type == content_type
    assert fast_body == stock_body, f"{name}: the fast path wrote other bytes than the stock path"


@pytest.mark.parametrize("escaping", ["dots", "values"])
def test_escaped_names_match_the_declared_escaping(escaping):
    """The bug this fixes: the fast path declared dots escaping and wrote unescaped names."""
    (body, content_type), _ = _render_both(prom3(escaping))
    assert content_type.endswith(f"escaping={escaping}")
    if escaping == "dots":
        assert b"system__cpu__time__seconds__total" in body and b"system_cpu_time_seconds_total{" not in body
    else:
        assert b"U__system__cpu__time__seconds__total" in body


def test_debians_prometheus_sends_the_header_in_the_table(tmp_path):
    """Capture the Accept header the installed Prometheus really sends."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.headers.get("Accept", ""))
            body = b"# TYPE up_test gauge\nup_test 1\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: t\n"
                      f"    static_configs: [{{targets: ['127.0.0.1:{server.server_address[1]}']}}]\n")
    port = free_port()
    proc = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not seen and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.shutdown()
    assert seen, "Prometheus never scraped the test server"
    version = subprocess.run(["prometheus", "--version"], capture_output=True, text=True).stdout
    header = seen[0]
    known = {PROM_2_42: "2.42", PROM_2_49: "2.49"} | {prom3(e): "3" for e in ESCAPINGS} | {prom3_0(e): "3.0" for e in ESCAPINGS}
    assert header in known, f"{version.splitlines()[0]} sends an Accept header the table lacks: {header!r}"
