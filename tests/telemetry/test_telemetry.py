"""Records → instruments, through an in-memory reader: values asserted by name and attributes."""

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.export import Sum

from helpers import FIXTURES, log_text
from otel_bare_metal.collectors.cpu.source import ProcfsCPUSource
from otel_bare_metal.collectors.filesystem.source import FilesystemSource, StatfsResult, StatfsWatchdog
from otel_bare_metal.procfs import parse_mountinfo
from otel_bare_metal.procfs import CPUStat, CPUTimes
from otel_bare_metal.telemetry import SourceWorker, instrument
from helpers import builtin_metrics


def collect(collectors):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrument(provider.get_meter("test"), collectors)
    return reader, provider


def points(reader):
    """{metric name: {frozenset(attributes): value}} plus the metric objects."""
    data = reader.get_metrics_data()
    out, metrics = {}, {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                metrics[m.name] = m
                out[m.name] = {frozenset(p.attributes.items()): p.value for p in m.data.data_points}
    return out, metrics


def fs_source(text, figures):
    table = parse_mountinfo(text)
    return FilesystemSource(watchdog=StatfsWatchdog(statfs=lambda p: figures[p], timeout=1), read_mounts=lambda _: table)


def test_cpu_time_is_a_monotonic_counter_per_cpu_and_mode():
    reader, provider = collect([SourceWorker("cpu", ProcfsCPUSource(str(FIXTURES / "proc"), hz=100))])
    values, metrics = points(reader)
    cpu_time = metrics["system.cpu.time"]
    assert cpu_time.unit == "s" and isinstance(cpu_time.data, Sum) and cpu_time.data.is_monotonic
    v = values["system.cpu.time"]
    assert v[frozenset({("cpu.logical_number", 0), ("cpu.mode", "user")})] == 11.32
    assert v[frozenset({("cpu.logical_number", 0), ("cpu.mode", "interrupt")})] == 1.27
    assert v[frozenset({("cpu.logical_number", 3), ("cpu.mode", "idle")})] == 4.0
    assert len(v) == 3 * 8, "three CPUs (0, 1, 3), eight modes each"
    assert not any(("cpu.logical_number", 2) in k for k in v), "an offline CPU is never invented"
    guest = values["system.cpu.guest.time"]
    assert guest[frozenset({("cpu.logical_number", 0), ("cpu.mode", "user")})] == 1.2
    assert guest[frozenset({("cpu.logical_number", 0), ("cpu.mode", "nice")})] == 0.07
    assert values["system.cpu.logical.count"] == {frozenset(): 3}
    provider.shutdown()


def test_filesystem_states_and_limits():
    src = fs_source("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 8:2 / /ro ro - xfs /dev/sdb ro\n",
                    {"/": StatfsResult(1000, 100, 30, 20, 10, 4), "/ro": StatfsResult(1, 8, 0, 0, 5, 0)})
    reader, provider = collect([SourceWorker("filesystem", src)])
    values, metrics = points(reader)
    root = {("system.device", "/dev/sda1"), ("system.filesystem.mountpoint", "/"),
            ("system.filesystem.type", "ext4"), ("system.filesystem.mode", "rw")}
    usage = values["system.filesystem.usage"]
    assert usage[frozenset(root | {("system.filesystem.state", "used")})] == 70_000
    assert usage[frozenset(root | {("system.filesystem.state", "free")})] == 20_000
    assert usage[frozenset(root | {("system.filesystem.state", "reserved")})] == 10_000
    assert values["system.filesystem.limit"][frozenset(root)] == 100_000
    assert values["system.filesystem.utilization"][frozenset(root)] == pytest.approx(70 / 90)
    inodes = values["system.filesystem.inodes.usage"]
    assert inodes[frozenset(root | {("system.filesystem.state", "used")})] == 6
    ro = frozenset({("system.device", "/dev/sdb"), ("system.filesystem.mountpoint", "/ro"),
                    ("system.filesystem.type", "xfs"), ("system.filesystem.mode", "ro")})
    assert values["system.filesystem.limit"][ro] == 8
    assert values["system.filesystem.utilization"][ro] == 1.0
    assert metrics["system.filesystem.usage"].unit == "By"
    assert not metrics["system.filesystem.usage"].data.is_monotonic
    provider.shutdown()


def test_a_failing_mount_is_an_error_series_and_hides_no_other_mount():
    src = fs_source("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 8:2 / /bad rw - ext4 /dev/sdb rw\n",
                    {"/": StatfsResult(1, 10, 5, 5, 1, 1)})  # /bad → KeyError from the fake statfs
    reader, provider = collect([SourceWorker("filesystem", src)])
    values, _ = points(reader)
    errors = {dict(k)["system.filesystem.mountpoint"]: v for k, v in values["system.filesystem.error"].items()}
    assert errors == {"/": 0, "/bad": 1}
    limits = {dict(k)["system.filesystem.mountpoint"] for k in values["system.filesystem.limit"]}
    assert limits == {"/"}
    provider.shutdown()


class Exploding:
    def read(self):
        raise RuntimeError("boom")


class Counting:
    def __init__(self):
        self.reads = 0

    def read(self):
        self.reads += 1
        return CPUStat(cpus=[CPUTimes(cpu=0, modes={"user": 1.0, "idle": 2.0})])


def test_one_failing_collector_never_fails_the_others():
    reader, provider = collect([SourceWorker("filesystem", Exploding()), SourceWorker("cpu", Counting())])
    values, _ = points(reader)
    success = {dict(k)["collector"]: v for k, v in values["otel_bare_metal.collector.success"].items()}
    assert success == {"filesystem": 0, "cpu": 1}
    assert len(values["system.cpu.time"]) == 2
    assert "system.filesystem.usage" not in values
    provider.shutdown()


def test_parse_errors_mark_the_collector_unsuccessful_but_export_the_rest(tmp_path):
    (tmp_path / "stat").write_text("cpu0 1 2 3 4\ncpu1 broken\n")
    reader, provider = collect([SourceWorker("cpu", ProcfsCPUSource(str(tmp_path), hz=100))])
    values, _ = points(reader)
    assert values["otel_bare_metal.collector.success"] == {frozenset({("collector", "cpu")}): 0}
    assert len(values["system.cpu.time"]) == 4
    provider.shutdown()


def test_each_source_is_read_once_per_collection():
    counting = Counting()
    reader, provider = collect([SourceWorker("cpu", counting)])
    for expected in (1, 2, 3):
        reader.get_metrics_data()
        assert counting.reads == expected
    provider.shutdown()


def test_every_definition_with_an_observer_is_registered():
    from otel_bare_metal.collectors.cpu.metrics import CPUObservers
    from otel_bare_metal.collectors.filesystem.metrics import FilesystemObservers
    from otel_bare_metal.telemetry.collection import self_monitoring_observers

    c = SourceWorker("x", Counting())
    bound = set(CPUObservers(c).observers()) | set(FilesystemObservers(c).observers()) | set(self_monitoring_observers([c]))
    defined = {m for m in builtin_metrics() if m.collector in ("cpu", "filesystem", "self")}
    assert bound == defined, "observers are keyed by the row objects themselves"


def test_the_exporters_provider_keeps_no_exemplars():
    from otel_bare_metal.telemetry.provider import meter_provider
    from opentelemetry.sdk.resources import Resource

    reader = InMemoryMetricReader()
    provider = meter_provider(Resource.create({}), [reader])
    instrument(provider.get_meter("test"), [SourceWorker("cpu", ProcfsCPUSource(str(FIXTURES / "proc"), hz=100))])
    data = reader.get_metrics_data()
    points = [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics for p in m.data.data_points]
    assert len(points) > 30 and all(p.exemplars == [] for p in points)
    provider.shutdown()


def test_a_fifo_for_stat_fails_only_the_cpu_collector(tmp_path, caplog):
    """A /proc/stat replaced by a FIFO nobody writes to: the cpu collector reports success 0
    with the reason (not a timeout: the file is never opened blocking), and the filesystem
    collector is untouched."""
    import logging
    import os

    os.mkfifo(tmp_path / "stat")
    figures = {"/": StatfsResult(4096, 100, 50, 40, 10, 5)}
    with caplog.at_level(logging.WARNING):
        reader, provider = collect([SourceWorker("cpu", ProcfsCPUSource(str(tmp_path), hz=100)),
                                    SourceWorker("filesystem", fs_source("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n", figures))])
        values, _ = points(reader)
    success = {dict(k)["collector"]: v for k, v in values["otel_bare_metal.collector.success"].items()}
    assert success == {"cpu": 0, "filesystem": 1}
    assert "not a regular file (a FIFO)" in log_text(caplog.records)
    assert "system.cpu.time" not in values and values["system.filesystem.usage"]
    provider.shutdown()
