"""The type stubs of ``peng3dnet._core`` describe the real module: mypy's ``stubtest``
compares them with the built module (names, signatures, defaults, what can be
subclassed); the checks below say the same in words a failure can point at."""

import ast
import inspect
import os
import pathlib
import subprocess
import sys

import pytest

import peng3dnet
from peng3dnet import _core

STUB = pathlib.Path(peng3dnet.__file__).with_name("_core.pyi")


def stub_classes():
    tree = ast.parse(STUB.read_text())
    classes = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            members = {item.name: item for item in node.body if isinstance(item, ast.FunctionDef)}
            bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
            classes[node.name] = (members, bases)
    return tree, classes


def stubbed_members(classes, name):
    members, bases = classes[name]
    merged = {}
    for base in bases:
        merged.update(stubbed_members(classes, base))
    merged.update(members)
    return merged


def test_every_runtime_name_is_stubbed():
    tree, _ = stub_classes()
    top = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    top |= {t.id for n in tree.body if isinstance(n, ast.AnnAssign) for t in [n.target]}
    runtime = {name for name in dir(_core) if not name.startswith("_")} | {"__version__"}
    assert runtime - top - {"_core"} == set()


@pytest.mark.parametrize("cls", ["FrameCodec", "Connection", "ServerCore", "ClientCore"])
def test_stubbed_members_exist(cls):
    _, classes = stub_classes()
    runtime = getattr(_core, cls)
    for name, node in stubbed_members(classes, cls).items():
        if name in ("__init__", "__new__"):
            continue
        assert hasattr(runtime, name), f"{cls}.{name} is stubbed but missing"
        is_property = any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)
        attr = inspect.getattr_static(runtime, name)
        if not is_property and callable(getattr(runtime, name)):
            try:
                signature = inspect.signature(getattr(runtime, name))
            except (TypeError, ValueError):
                continue
            stub_params = [a.arg for a in node.args.args + node.args.kwonlyargs if a.arg != "self"]
            runtime_params = [p for p in signature.parameters if p != "self"]
            assert runtime_params == stub_params, f"{cls}.{name}"
        elif is_property:
            assert not callable(attr) or hasattr(attr, "__get__"), f"{cls}.{name} should be a property"


def test_runtime_methods_are_stubbed():
    _, classes = stub_classes()
    for cls in ["FrameCodec", "Connection", "ServerCore", "ClientCore"]:
        stubbed = stubbed_members(classes, cls)
        runtime = {n for n in dir(getattr(_core, cls)) if not n.startswith("_")}
        assert runtime - set(stubbed) == set(), cls


def test_stubtest_finds_no_difference_from_the_built_module(tmp_path):
    # mypy is pinned in ./run's environment for ours: a missing mypy fails here.
    env = dict(os.environ, MYPY_CACHE_DIR=str(tmp_path / "mypy-cache"))
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "peng3dnet._core"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
