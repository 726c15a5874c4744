"""The package's import graph has no circle, and importing a module loads no plugin.

The graph is read from the source (every ``import``, function-local ones included), so an
import hidden inside a function to dodge a circular import at load time still counts.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap

from helpers import ROOT

PACKAGE = "otel_bare_metal"


def modules() -> dict[str, ast.Module]:
    """Module name → parsed source, for every module of the package."""
    out = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), str(path))
    return out


def _resolve(name: str, known: set[str]) -> str | None:
    """The longest prefix of ``name`` that is a module of the package."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, tree: ast.Module, known: set[str], is_package: bool) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names]  # a submodule, or a name in base
        else:
            continue
        for target in targets:
            resolved = _resolve(target, known)
            if resolved and resolved != module:
                out.add(resolved)
    return out


def import_graph() -> dict[str, set[str]]:
    trees = modules()
    known = set(trees)
    packages = {name for name in trees if (ROOT / name.replace(".", "/") / "__init__.py").exists()}
    return {name: imports_of(name, tree, known, name in packages) for name, tree in trees.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_reader_sees_function_local_and_relative_imports():
    known = {"p", "p.a", "p.b", "p.sub", "p.sub.c"}
    tree = ast.parse(textwrap.dedent("""
        import p.a
        def f():
            from p.b import name
        from . import c
        from .. import b
    """))
    assert imports_of("p.sub", tree, known, is_package=True) == {"p.a", "p.b", "p.sub.c"}
    assert cycles({"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}}) == [["x", "y", "z"]]


def test_no_two_modules_import_each_other():
    graph = import_graph()
    assert "otel_bare_metal.cli" in graph["otel_bare_metal.__main__"]  # the reader sees the package
    circles = cycles(graph)
    assert not circles, "import circles (function-local imports count): " + "; ".join(" <-> ".join(c) for c in circles)


def test_importing_any_module_loads_no_plugin():
    """Plugins are loaded when the command runs, not when a module is imported (a test, a tool or
    the docs generator importing a module must not run third-party code)."""
    script = textwrap.dedent(f"""
        import importlib, importlib.metadata, pkgutil, sys
        asked = []
        real = importlib.metadata.entry_points
        def entry_points(**kw):
            if kw.get("group") == "otel_bare_metal.collectors":
                asked.append(kw)
            return real(**kw)
        importlib.metadata.entry_points = entry_points
        import {PACKAGE}
        names = [m.name for m in pkgutil.walk_packages({PACKAGE}.__path__, "{PACKAGE}.")
                 if not m.name.endswith("__main__")]
        for name in names:
            importlib.import_module(name)
        from {PACKAGE}.registry import registry
        plugins = sorted(m for m in sys.modules if m.startswith("otel_bare_metal_"))
        print(len(names), len(asked), registry.cache_info().currsize, ",".join(plugins))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    imported, asked, cached, plugins = (result.stdout.split(" ") + [""])[:4]
    assert int(imported) > 30
    assert (asked, cached, plugins.strip()) == ("0", "0", ""), result.stdout


def test_serving_loads_only_what_the_configuration_uses():
    """Without --web.config.file and without push, starting the exporter imports neither the
    web-config module (YAML, bcrypt) nor an OTLP exporter (gRPC, protobuf): megabytes of the
    resident set (bench/start_memory.py).  With them, it does."""
    script = textwrap.dedent("""
        import sys
        import otel_bare_metal.cli  # what the command imports
        from otel_bare_metal.app import App
        from otel_bare_metal.config import Config
        heavy = ("otel_bare_metal.server.webconfig", "yaml", "bcrypt", "grpc", "google.protobuf",
                 "opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "opentelemetry.exporter.otlp.proto.http.metric_exporter")
        app = App(Config(listen_address="127.0.0.1:0")).start()
        print(",".join(m for m in heavy if m in sys.modules))
        app.close(grace=0)
        App(Config(listen_address="127.0.0.1:0", exporters=frozenset({"prometheus", "otlp"}), otlp_protocol="grpc")).close(grace=0)
        print(",".join(m for m in heavy if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    off, on = result.stdout.splitlines()[-2:]
    assert off == ""
    assert "opentelemetry.exporter.otlp.proto.grpc.metric_exporter" in on.split(",")
