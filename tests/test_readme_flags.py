"""The README's flag table lists every flag the command takes, with its default."""

import re

from helpers import ROOT
from otel_bare_metal.cli import SERVE_FLAGS


def _table_rows() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Flags\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `(--(?:\[no-\])?[a-z0-9.\-]+)` \|\s*([^|]*?)\s*\|", line)
        if m:
            rows[m.group(1).replace("[no-]", "")] = m.group(2).strip()
    return rows


def test_every_flag_is_in_the_readme_table():
    rows = _table_rows()
    missing = [flag for flag, _, _ in SERVE_FLAGS if flag not in rows]
    assert not missing, f"README.md's flag table lacks {missing}"
    unknown = [flag for flag in rows if flag not in {f for f, _, _ in SERVE_FLAGS}]
    assert not unknown, f"README.md's flag table lists flags the command does not take: {unknown}"


def test_boolean_flags_are_written_with_no_prefix():
    text = (ROOT / "README.md").read_text()
    for flag, default, _ in SERVE_FLAGS:
        if isinstance(default, bool):
            assert f"`--[no-]{flag[2:]}`" in text, flag
