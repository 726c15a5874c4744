"""The README's flag table lists every flag the command takes (exporter-wide and every built-in
collector's; an installed plugin's flags are documented by the plugin), and no other flag."""

import re

from helpers import ROOT
from otel_bare_metal.config import FLAGS
from otel_bare_metal.registry import builtin_specs


def _table_flags() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Flags\n", 1)[1].split("\n## ", 1)[0]
    flags = set()
    for line in section.splitlines():
        m = re.match(r"\| `(--(?:\[no-\])?[a-z0-9.\-]+)` \|", line)
        if m:
            flags.add(m.group(1).replace("[no-]", ""))
    return flags


def test_every_flag_is_in_the_readme_table():
    table = _table_flags()
    rows = list(FLAGS) + [row for spec in builtin_specs() for row in (spec.enable_flag, *spec.flags)]
    taken = {row.flag for row in rows}
    assert not taken - table, f"README.md's flag table lacks {sorted(taken - table)}"
    assert not table - taken, f"README.md's flag table lists flags the command does not take: {sorted(table - taken)}"
