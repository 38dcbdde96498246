"""Shared test infrastructure.

The suite runs under two interpreters:

* ``.venv`` (ours): everything under ``tests/``;
* ``.venv-ref`` (the original pure-Python peng3dnet 0.1.3a0): only ``tests/conformance``,
  the behaviour both implementations must share.

Tests marked ``reference_bug(n)`` show bug ``n`` of ``../shared/REFERENCE.md``: under the
reference they are expected to fail (strict xfail, so a reference that stops failing is
noticed); under ours they must pass. ``reference_bug(n, sometimes=True)``: a race of the
reference that fails only some runs (a non-strict xfail there; still strict under ours).
Tests marked ``ours_only`` exercise extensions and are skipped under the reference.

Cross-implementation tests start the other side as a subprocess with the other
interpreter (see ``peers/`` and the ``other_python`` fixture).
"""

import pathlib
import sys

import pytest

# Shared helpers live in tests/support.py; make it importable from every test directory.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from support import IMPL, PYTHONS, Harness


def pytest_report_header(config):
    import peng3dnet

    return [f"peng3dnet implementation under test: {IMPL} ({pathlib.Path(peng3dnet.__file__).parent})"]


def pytest_collection_modifyitems(config, items):
    for item in items:
        bug = item.get_closest_marker("reference_bug")
        if bug is not None and IMPL == "reference":
            number = bug.args[0] if bug.args else "?"
            sometimes = bool(bug.kwargs.get("sometimes", False))
            item.add_marker(
                pytest.mark.xfail(
                    strict=not sometimes,
                    reason=f"known bug {number} of the reference implementation"
                    + (" (a race: fails in some runs)" if sometimes else ""),
                )
            )
        if item.get_closest_marker("ours_only") is not None and IMPL == "reference":
            item.add_marker(pytest.mark.skip(reason="extension of peng3dnet-rs"))


def _interpreter(name):
    path = PYTHONS[name]
    if not path.exists():
        pytest.fail(
            f"the {name} interpreter {path} is missing: run `./run setup` first "
            "(cross-implementation tests need both virtual environments)"
        )
    return str(path)


@pytest.fixture(scope="session")
def impl():
    """Which implementation this interpreter runs: ``"ours"`` or ``"reference"``."""
    return IMPL


@pytest.fixture(scope="session")
def ours_python():
    """Path of the interpreter that has peng3dnet-rs installed."""
    return _interpreter("ours")


@pytest.fixture(scope="session")
def ref_python():
    """Path of the interpreter that has the reference peng3dnet installed."""
    return _interpreter("reference")


@pytest.fixture(scope="session")
def other_python():
    """Path of the interpreter of the *other* implementation."""
    return _interpreter("reference" if IMPL == "ours" else "ours")


@pytest.fixture(scope="session")
def python_of():
    """``python_of("ours")`` / ``python_of("reference")``: an interpreter by name."""
    return _interpreter


def pytest_generate_tests(metafunc):
    # Under ours, every conformance test that uses the harness runs twice: over TCP on
    # loopback and over the in-process transport ("memory:" addresses), which must
    # behave the same. Other tests, and the reference, use TCP only.
    if "net" in metafunc.fixturenames:
        conformance = "conformance" in pathlib.Path(str(metafunc.definition.path)).parts
        transports = ["tcp", "memory"] if IMPL == "ours" and conformance else ["tcp"]
        metafunc.parametrize("net", transports, indirect=True)


@pytest.fixture
def net(request):
    """A :class:`support.Harness` on the transport the test is parametrized with
    (``"tcp"`` or ``"memory"``); everything it started is stopped afterwards."""
    harness = Harness(getattr(request, "param", "tcp"))
    yield harness
    harness.close()
