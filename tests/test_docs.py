from otel_bare_metal import docgen
from helpers import builtin_metrics

METRICS = builtin_metrics()


def test_metrics_doc_is_generated_from_the_table():
    assert docgen.DOC.read_text() == docgen.render(), "run: python -m otel_bare_metal.docgen"


def test_every_metric_is_documented_and_described():
    text = docgen.DOC.read_text()
    for m in METRICS:
        assert f"`{m.name}`" in text
        # a classic-only row has no name of its own on /metrics: its classic names are listed instead
        assert (f"`{m.name}` | — (classic only) |" in text) if m.classic_only else (f"`{m.prometheus_name}`" in text)
        assert m.description.strip(), f"{m.name} has no description (promtool rejects metrics without help)"


def test_names_are_unique():
    assert len({m.name for m in METRICS}) == len(METRICS)
    assert len({m.prometheus_name for m in METRICS}) == len(METRICS)


def test_classic_names_are_listed_and_render_exactly():
    from otel_bare_metal.telemetry.naming import instrument_for

    text = docgen.DOC.read_text()
    classic = [(m, c) for m in METRICS for c in m.classic]
    assert len(classic) >= 30
    for m, c in classic:
        assert f"`{c.name}" in text, c.name
        assert instrument_for(m, c).prometheus_name == c.name, "the reader must print exactly the classic name"
    names = [c.name for _, c in classic]
    assert len(names) == len(set(names))
