"""Logs: promslog-style logfmt by default, ``--log.format json`` as one object per line.

The end-to-end tests run the real command in a way that makes it log errors and warnings (a
malformed /proc/stat line, a dead HDHomeRun device, an unreachable OTLP receiver, bad OTel
environment values) and parse every line it writes to stderr strictly.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from helpers import FIXTURES, ROOT, fetch, free_port, wait_for_http
from logfmt_strict import LogfmtError, check_promslog, parse_logfmt
from otel_bare_metal.logutil import JSONFormatter, LogfmtFormatter, fields, logfmt_value, setup_logging

TRICKY = ["plain", "", "two words", 'a "quoted" word', "key=value", "line\nbreak", "tab\there", "back\\slash",
          "é ünïcode", "\x00nul\x1bescape", "\u2028", "trailing ", "=", '"']


@pytest.mark.parametrize("value", TRICKY, ids=repr)
def test_every_value_survives_a_strict_logfmt_round_trip(value):
    record = logging.LogRecord("otel_bare_metal.x", logging.WARNING, "/a/b/app.py", 42, value, (), None)
    record.__dict__.update(fields(detail=value, n=3, ok=True))
    parsed = check_promslog(parse_logfmt(LogfmtFormatter().format(record)))
    assert parsed["msg"] == value and parsed["detail"] == value
    assert (parsed["level"], parsed["source"], parsed["n"], parsed["ok"]) == ("warn", "app.py:42", "3", "true")
    obj = json.loads(JSONFormatter().format(record))
    assert list(obj)[:4] == ["time", "level", "source", "msg"] and obj["detail"] == value


def test_bare_and_quoted_values_follow_slogs_rules():
    assert logfmt_value("info") == "info"
    assert logfmt_value(":9464") == ":9464"
    assert logfmt_value("listening on") == '"listening on"'
    assert logfmt_value("") == '""'
    assert logfmt_value("a=b") == '"a=b"'
    assert logfmt_value('say "hi"') == '"say \\"hi\\""'


def test_levels_are_lower_case_and_exceptions_stay_on_one_line():
    stream = io.StringIO()
    handler = setup_logging("debug", "logfmt", stream=stream)
    try:
        log = logging.getLogger("otel_bare_metal.test")
        for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
            log.log(level, "m")
        try:
            raise OSError("disk on fire\nreally")
        except OSError:
            log.exception("statfs failed")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    parsed = [check_promslog(parse_logfmt(line)) for line in lines]
    assert [p["level"] for p in parsed] == ["debug", "info", "warn", "error", "error", "error"]
    assert parsed[-1]["err"] == "OSError: disk on fire\nreally" and "Traceback" in parsed[-1]["trace"]


def test_the_strict_parser_refuses_what_the_old_format_wrote():
    with pytest.raises(LogfmtError):
        check_promslog(parse_logfmt("ts=2026-12-02T12:00:00+0000 level=INFO logger=x msg='listening on :9464'"))
    for bad in ['a=1  b=2', 'a=1 ', 'a="x', 'a= b=1', 'a=1 a=2', '=1', 'a b=1', 'a="\\q"']:
        with pytest.raises(LogfmtError):
            parse_logfmt(bad)


def _broken_procfs(tmp_path):
    proc = tmp_path / "proc"
    shutil.copytree(FIXTURES / "proc", proc)
    with open(proc / "stat", "a") as f:
        f.write("cpu9 12 not-a-number 3\n")
    return proc


def _run_with_errors(tmp_path, *extra: str) -> tuple[str, str]:
    """Run the real command so that it logs warnings and errors; return (stdout, stderr)."""
    port = free_port()
    dead = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({
        "PYTHONPATH": str(ROOT),
        "OTEL_METRICS_EXPORTER": "prometheus,otlp,zipkin",   # zipkin: a warning
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{dead}",  # nobody listens: export errors
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1", "OTEL_METRIC_EXPORT_INTERVAL": "200", "OTEL_METRIC_EXPORT_TIMEOUT": "1000",
        "OTEL_EXPORTER_PROMETHEUS_PORT": "not-a-port",        # a warning
        "OTEL_SDK_DISABLED": "maybe",                          # a warning
        "REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "",
    })
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_bare_metal", f"--web.listen-address=127.0.0.1:{port}",
         f"--path.procfs={_broken_procfs(tmp_path)}", f"--path.rootfs={FIXTURES / 'rootfs'}",
         f"--hdhomerun.device=127.0.0.1:{dead}", "--hdhomerun.timeout=0.5", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + "/healthz", proc=proc)
        for _ in range(3):
            assert fetch(base + "/metrics")[0] == 200
        fetch(base + "/probe?target=8.8.8.8")  # refused by the allowlist
        time.sleep(2.5)  # several push intervals: the OTLP exporter gives up (1 s timeout) and logs an error
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert proc.returncode == 0, err
    return out, err


def _expect_the_errors(records: list[dict]) -> None:
    levels = {r["level"] for r in records}
    assert {"info", "warn", "error"} <= levels, levels
    text = "\n".join(r["msg"] for r in records)
    for expected in ("zipkin", "OTEL_EXPORTER_PROMETHEUS_PORT", "OTEL_SDK_DISABLED", "metrics exporters", "cpu9"):
        assert expected in text, f"no log line mentions {expected!r}:\n{text}"
    assert any(r.get("logger", "").startswith("opentelemetry") for r in records), "the SDK's own lines use the format too"


def test_every_line_of_a_run_with_errors_is_strict_logfmt(tmp_path):
    out, err = _run_with_errors(tmp_path)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) >= 6
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(check_promslog(parse_logfmt(line)))
        except LogfmtError as e:
            pytest.fail(f"stderr line {number} is not promslog logfmt: {e}\n{err}")
    _expect_the_errors(records)


def test_every_line_of_a_run_with_errors_is_one_json_object(tmp_path):
    _, err = _run_with_errors(tmp_path, "--log.format=json")
    records = []
    for number, line in enumerate(err.splitlines(), 1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            pytest.fail(f"stderr line {number} is not JSON: {e}: {line!r}")
        assert isinstance(obj, dict)
        records.append(check_promslog(obj))
    _expect_the_errors(records)


def test_bad_log_format_is_a_usage_error():
    result = subprocess.run([sys.executable, "-m", "otel_bare_metal", "--log.format=xml"], capture_output=True, text=True,
                            timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and "--log.format" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_plain_extra_keys_are_fields_too():
    record = logging.getLogger("otel_bare_metal.x").makeRecord(
        "otel_bare_metal.x", logging.DEBUG, "/a/http.py", 7, "raised the open files limit", (), None,
        extra={"from": 1024, "to": 524288})
    parsed = check_promslog(parse_logfmt(LogfmtFormatter().format(record)))
    assert (parsed["from"], parsed["to"]) == ("1024", "524288")


def test_rate_limited_lines_name_their_caller_as_source():
    from otel_bare_metal.logutil import LogBudget, RateLimitedLog

    stream = io.StringIO()
    handler = setup_logging("info", "logfmt", stream=stream)
    try:
        RateLimitedLog(logging.getLogger("otel_bare_metal.t"), budget=LogBudget())(logging.WARNING, "k", "dead device")
    finally:
        logging.getLogger().removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    assert check_promslog(parse_logfmt(line))["source"].startswith("test_logging.py:")


def test_start_up_failures_are_log_lines_too():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "otel_bare_metal", f"--web.listen-address=127.0.0.1:{port}"],
                                capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    record = check_promslog(parse_logfmt(line))
    assert record["level"] == "error" and "cannot listen" in record["msg"]
