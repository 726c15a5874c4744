"""Logs: promslog's logfmt by default, ``--log.format json`` as one object per line.

The end-to-end tests run the real command in a way that makes it log errors and warnings (a
malformed /proc/stat line, a dead HDHomeRun device, an unreachable OTLP receiver, bad OTel
environment values) and parse every line it writes to stderr strictly; one runs the real
node_exporter beside ours and compares the shape of their lines.  Every log call in the package
is read (its syntax tree) to keep messages constant and values in fields.
"""

from __future__ import annotations

import ast
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from helpers import FIXTURES, ROOT, fetch, free_port, stop_process, wait_for_http
from logfmt_strict import JSON_TIME, TIME, LogfmtError, check_promslog, parse_logfmt
from otel_bare_metal.logutil import JSONFormatter, LogfmtFormatter, Message, fields, go_float, logfmt_value, setup_logging

TRICKY = ["plain", "", "two words", 'a "quoted" word', "key=value", "line\nbreak", "tab\there", "back\\slash",
          "é ünïcode", "\x00nul\x1bescape", "\u2028", "trailing ", "=", '"']


@pytest.mark.parametrize("value", TRICKY, ids=repr)
def test_every_value_survives_a_strict_logfmt_round_trip(value):
    record = logging.LogRecord("otel_bare_metal.x", logging.WARNING, "/a/b/app.py", 42, value, (), None)
    record.__dict__.update(fields(detail=value, n=3, ok=True))
    parsed = check_promslog(parse_logfmt(LogfmtFormatter().format(record)))
    assert parsed["msg"] == value and parsed["detail"] == value
    assert (parsed["level"], parsed["source"], parsed["n"], parsed["ok"]) == ("WARN", "app.py:42", "3", "true")
    obj = check_promslog(json.loads(JSONFormatter().format(record)))
    assert (obj["msg"], obj["detail"], obj["n"], obj["ok"]) == (value, value, 3, True)


def test_bare_and_quoted_values_follow_slogs_rules():
    assert logfmt_value("info") == "info"
    assert logfmt_value(":9464") == ":9464"
    assert logfmt_value("listening on") == '"listening on"'
    assert logfmt_value("") == '""'
    assert logfmt_value("a=b") == '"a=b"'
    assert logfmt_value('say "hi"') == '"say \\"hi\\""'
    assert logfmt_value("back\\slash") == "back\\slash", "slog quotes no value for a backslash alone"
    assert logfmt_value(5.0) == "5" and logfmt_value(True) == "true"


# strconv.FormatFloat(f, 'g', -1, 64) and encoding/json, as Go writes them
GO_FLOATS = [(5.0, "5", "5"), (0.5, "0.5", "0.5"), (2.5, "2.5", "2.5"), (100.0, "100", "100"),
             (123456.0, "123456", "123456"), (1e6, "1e+06", "1000000"), (1234567.0, "1.234567e+06", "1234567"),
             (1e-5, "1e-05", "0.00001"), (0.0001, "0.0001", "0.0001"), (1.5e-7, "1.5e-07", "1.5e-7"),
             (1e21, "1e+21", "1e+21"), (1e20, "1e+20", "100000000000000000000"), (-3.25, "-3.25", "-3.25"),
             (0.1, "0.1", "0.1"), (-0.0, "-0", "-0"), (float("inf"), "+Inf", "+Inf"), (float("nan"), "NaN", "NaN")]


@pytest.mark.parametrize("value,text,json_text", GO_FLOATS, ids=[t for _, t, _ in GO_FLOATS])
def test_numbers_are_written_as_go_writes_them(value, text, json_text):
    assert go_float(value) == text
    assert go_float(value, json_number=True) == json_text


def test_a_field_named_like_a_head_key_is_renamed_as_promslog_does():
    record = logging.LogRecord("otel_bare_metal.x", logging.INFO, "/a/app.py", 1, "m", (), None)
    record.__dict__.update(fields(time="t", level="l", source="s", msg="m2", other=1))
    parsed = check_promslog(parse_logfmt(LogfmtFormatter().format(record)))
    assert [parsed[f"logged_{k}"] for k in ("time", "level", "source", "msg")] == ["t", "l", "s", "m2"]
    obj = check_promslog(json.loads(JSONFormatter().format(record)))
    assert obj["logged_level"] == "l" and obj["other"] == 1


def test_a_message_carries_its_fields():
    stream = io.StringIO()
    handler = setup_logging("info", "json", stream=stream)
    try:
        logging.getLogger("otel_bare_metal.t").warning(Message("not a port", variable="X_PORT", value="a b"))
    finally:
        logging.getLogger().removeHandler(handler)
    obj = check_promslog(json.loads(stream.getvalue()))
    assert (obj["level"], obj["msg"], obj["variable"], obj["value"]) == ("WARN", "not a port", "X_PORT", "a b")


def test_levels_are_slogs_upper_case_names_and_exceptions_stay_on_one_line():
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
    assert [p["level"] for p in parsed] == ["DEBUG", "INFO", "WARN", "ERROR", "ERROR", "ERROR"]
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


def _run_with_errors(tmp_path, dead: int, *extra: str) -> tuple[str, str]:
    """Run the real command so that it logs warnings and errors; return (stdout, stderr)."""
    port = free_port()
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


def _expect_the_errors(records: list[dict], dead: int) -> None:
    levels = {r["level"] for r in records}
    assert {"INFO", "WARN", "ERROR"} <= levels, levels
    text = "\n".join(" ".join(str(v) for v in r.values()) for r in records)
    for expected in ("zipkin", "OTEL_EXPORTER_PROMETHEUS_PORT", "OTEL_SDK_DISABLED", "metrics exporters", "cpu9"):
        assert expected in text, f"no log line mentions {expected!r}:\n{text}"
    assert any(r.get("logger", "").startswith("opentelemetry") for r in records), "the SDK's own lines use the format too"
    (start,) = [r for r in records if r["msg"] == "starting otel-bare-metal"]
    assert (start["collectors"], start["devices"]) == ("cpu,filesystem,hdhomerun", f"127.0.0.1:{dead}"), start
    ours = [r for r in records if "logger" not in r]
    reprs = re.compile(r"=|'[^' ]*'|\b(True|False|None)\b")  # tls=False, 'value': Python reprs in the text
    assert not [r["msg"] for r in ours if reprs.search(r["msg"])], "values belong in fields, not in msg"


def test_every_line_of_a_run_with_errors_is_strict_logfmt(tmp_path):
    dead = free_port()
    out, err = _run_with_errors(tmp_path, dead)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) >= 6
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(check_promslog(parse_logfmt(line)))
        except LogfmtError as e:
            pytest.fail(f"stderr line {number} is not promslog logfmt: {e}\n{err}")
    _expect_the_errors(records, dead)


def test_every_line_of_a_run_with_errors_is_one_json_object(tmp_path):
    dead = free_port()
    _, err = _run_with_errors(tmp_path, dead, "--log.format=json")
    records = []
    for number, line in enumerate(err.splitlines(), 1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            pytest.fail(f"stderr line {number} is not JSON: {e}: {line!r}")
        assert isinstance(obj, dict)
        records.append(check_promslog(obj))
    _expect_the_errors(records, dead)


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
    assert (record["level"], record["msg"]) == ("ERROR", "cannot listen") and f"127.0.0.1:{port}" in record["err"]


# --- the real promslog: node_exporter beside ours ------------------------------------------------

def _start_up_lines(command: list[str], url: str, env: dict[str, str]) -> list[str]:
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_http(url, proc=proc)
    finally:
        stop_process(proc)
    return proc.stderr.read().splitlines()


def _shape(record: dict, time_format: re.Pattern) -> tuple:
    """What must be alike: key order, level names, the time's form and zone, source's form."""
    time_text = str(record["time"])
    return (list(record)[:4], record["level"] in ("DEBUG", "INFO", "WARN", "ERROR"),
            bool(time_format.fullmatch(time_text)), time_text[-6:],
            bool(re.fullmatch(r"[\w.-]+\.(go|py):\d+", str(record["source"]))))


@pytest.mark.peers  # the Go-built node_exporter: main interpreter only (scripts/test)
@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_our_lines_have_the_shape_of_node_exporters(log_format):
    """node_exporter 1.12 (built from its Go module) and ours, started in a zone that is not
    UTC: the same keys first, the same level names, the same time format and zone offset."""
    from collector_support import go_peer

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, "TZ": "Asia/Kolkata",
           "PYTHONPATH": str(ROOT)}
    port = free_port()
    theirs = _start_up_lines([go_peer("node_exporter"), f"--web.listen-address=127.0.0.1:{port}",
                              "--collector.disable-defaults", f"--log.format={log_format}"],
                             f"http://127.0.0.1:{port}/metrics", env)
    port = free_port()
    ours = _start_up_lines([sys.executable, "-m", "otel_bare_metal", f"--web.listen-address=127.0.0.1:{port}",
                            "--collector.disable-defaults", f"--log.format={log_format}"],
                           f"http://127.0.0.1:{port}/healthz", env)
    parse = json.loads if log_format == "json" else (lambda line: dict(parse_logfmt(line)))
    time_format = JSON_TIME if log_format == "json" else TIME
    their_shapes = {str(_shape(parse(line), time_format)) for line in theirs}
    our_shapes = {str(_shape(parse(line), time_format)) for line in ours}
    assert len(their_shapes) == 1 and their_shapes == our_shapes, (theirs, ours)
    assert "+05:30" in their_shapes.pop()
    assert any('"INFO"' in line or "level=INFO" in line for line in theirs + ours)


# --- every log call in the package: a constant message, values in fields ---------------------------

LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical"}
RATE_LIMITED = {"_warn", "_log"}  # RateLimitedLog instances: (level, key, msg, **fields)
FORMAT_DIRECTIVE = re.compile(r"%[-#0 +]*[\d.]*[sdifrxXeEgGc%]|\{[^}]*\}")


def _message_argument(call: ast.Call) -> tuple[ast.expr | None, list[ast.expr]]:
    """(the msg argument, the positional arguments after it) of a logging call, else (None, [])."""
    func = call.func
    if isinstance(func, ast.IfExp):  # (log.warning if x else log.info)(msg, ...)
        func = func.body
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    receiver = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
    if name in LOG_METHODS and re.search(r"(^|\.|_)(log|logger|summary)$|getLogger\(", receiver):
        index = 0
    elif name == "log" and re.search(r"(^|\.|_)(log|logger)$", receiver):
        index = 1
    elif name in RATE_LIMITED:
        index = 2
    elif name in ("Message", "Notice"):  # logutil.Message, config.Notice: a message made before logging
        index = 0
    else:
        return None, []
    if len(call.args) <= index:
        return None, []
    if name == "Notice":  # Notice(msg, fields): its second argument is the fields mapping
        return call.args[index], []
    return call.args[index], call.args[index + 1:]


def _constant_texts(node: ast.expr) -> list[str] | None:
    """The texts a message expression can have, or None when it is not constant."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _constant_texts(node.body), _constant_texts(node.orelse)
        return None if body is None or orelse is None else body + orelse
    return None


def test_every_log_message_in_the_package_is_constant_text():
    package = ROOT / "otel_bare_metal"
    problems, calls = [], 0
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            msg, rest = _message_argument(node)
            if msg is None:
                continue
            calls += 1
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if rest:
                problems.append(f"{where}: values formatted into the message (%-arguments)")
            if isinstance(msg, (ast.Name, ast.Attribute)):  # a Message or Notice: checked where it is built
                continue
            texts = _constant_texts(msg)
            if texts is None:
                problems.append(f"{where}: the message is not constant text: {ast.unparse(msg)}")
            elif any(FORMAT_DIRECTIVE.search(t) for t in texts):
                problems.append(f"{where}: a format directive in the message: {texts}")
    assert calls > 40, "the audit found the package's log calls"
    assert not problems, "\n".join(problems)
