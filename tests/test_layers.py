"""The Rust core's modules depend on each other one way.

Within each layer directory of ``src/`` (``protocol``, ``peer``, ``transport``,
``bindings``), the sibling modules that one module names through ``super::`` or
``crate::<layer>::`` form a graph; it must have no circle. Where a lower module has to
call up, it does so through a function or trait given to it from above (see
``src/transport/mod.rs``). Across layers, ``protocol`` names no other layer, ``peer``
only ``protocol``, ``transport`` not ``bindings``.
"""

import re

import pytest
from support import ROOT

SRC = ROOT / "src"
LAYERS = ["protocol", "peer", "transport", "bindings"]


def _source(path):
    text = path.read_text()
    # Unit tests at the end of a file may name anything.
    text = text.split("#[cfg(test)]\nmod tests")[0]
    return re.sub(r"//.*", "", text)


def _modules(layer):
    """Each module of a layer (a file, or a directory with its files) and its source."""
    modules = {}
    root = SRC / layer
    for path in sorted(root.rglob("*.rs")):
        parts = path.relative_to(root).parts
        if parts == ("mod.rs",) or parts == ("tests.rs",):
            continue
        name = parts[0].removesuffix(".rs")
        modules[name] = modules.get(name, "") + _source(path)
    return modules


def _graph(layer):
    modules = _modules(layer)
    graph = {}
    for name, text in modules.items():
        named = set()
        for use in re.findall(r"\buse\s+([^;]+);", text):
            if "super" in use or f"{layer}::" in use:
                named.update(re.findall(r"\b([a-z_][a-z0-9_]*)\b", use))
        named.update(re.findall(rf"(?:super|{layer})::([a-z_][a-z0-9_]*)::", text))
        graph[name] = sorted(named & set(modules) - {name})
    return graph


def _circles(graph):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_no_module_circles_within_a_layer(layer):
    graph = _graph(layer)
    assert graph, f"no modules found in src/{layer}"
    circles = _circles(graph)
    edges = {name: deps for name, deps in graph.items() if any(name in c for c in circles)}
    assert not circles, (
        f"src/{layer}: these modules name each other in a circle: {circles}; "
        f"their dependencies: {edges}. Let the lower one call up through a trait or "
        "function given to it (see src/transport/mod.rs)."
    )


def test_the_checker_finds_a_circle():
    # The check above must be able to fail.
    assert _circles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert _circles({"a": ["b"], "b": []}) == []


@pytest.mark.parametrize(
    "layer, forbidden",
    [
        ("protocol", ["peer", "transport", "bindings"]),
        ("peer", ["transport", "bindings"]),
        ("transport", ["bindings"]),
    ],
)
def test_layers_name_only_the_layers_below(layer, forbidden):
    offenders = []
    for path in sorted((SRC / layer).rglob("*.rs")):
        text = _source(path)
        for other in forbidden:
            if re.search(rf"\bcrate::{other}\b", text):
                offenders.append(f"{path.relative_to(ROOT)} names crate::{other}")
    assert not offenders, offenders
