"""Shared helpers for the Helm chart tests (fixtures are in conftest.py).

Helm itself comes from the PyPI package ``helm-python-sdk`` (import name ``helm_python``): it
bundles ``libhelm_c``, Helm's v4 Go SDK behind a C ABI, and calls it through ctypes.  It ships no
``helm`` binary; ``Chart.render`` is ``helm template`` (schema validation included, NOTES.txt
rendered so its ``fail`` guards run) and ``helm_python.lint`` is ``helm lint``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

import helm_python as helm  # noqa: F401  (PyPI: helm-python-sdk; conftest and the tests import it from here)


REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "helm" / "otel-bare-metal"
CI_DIR = CHART_DIR / "ci"
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
RELEASE = "obm"
NAMESPACE = "monitoring"
NOTES = "otel-bare-metal/templates/NOTES.txt"

SCENARIOS = sorted(p.name for p in CI_DIR.glob("*-values.yaml"))


def scenario_values(name: str) -> dict[str, Any]:
    return yaml.safe_load((CI_DIR / name).read_text()) or {}


class Rendered:
    """One render: manifests by template path, the parsed documents, NOTES.txt."""

    def __init__(self, manifests: dict[str, str]):
        self.manifests = manifests
        self.notes = manifests.get(NOTES, "")
        self.docs: list[dict[str, Any]] = []
        for path in sorted(manifests):
            if path == NOTES:
                continue
            for doc in yaml.safe_load_all(manifests[path]):
                if doc:
                    self.docs.append(doc)

    def kinds(self) -> list[str]:
        return [d["kind"] for d in self.docs]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, got {len(found)}"
        return found[0]

    def golden_text(self) -> str:
        """All manifests (not NOTES.txt) in template order, like ``helm template`` prints them."""
        parts = []
        for path in sorted(self.manifests):
            if path == NOTES:
                continue
            for chunk in self.manifests[path].split("\n---\n"):
                body = chunk.strip().removeprefix("---").strip()
                if body:
                    parts.append(f"---\n# Source: {path}\n{body}\n")
        return "".join(parts)


def update_golden() -> bool:
    return os.environ.get("UPDATE_GOLDEN") == "1"
