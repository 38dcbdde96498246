"""What apps can reach in peng3dnet-rs is what they could reach in the original.

Both implementations are walked by ``peers/surface_dump.py`` in subprocesses (each
under its own interpreter) and compared by :func:`parity.compare_surface`: every module,
class, function and constant reachable by attribute access from ``peng3dnet``
(``peng3dnet.net.packet.SmartPacket``, the constants star-imported into
``peng3dnet.packet``), the underscore names on classes, the parameters of every
function, the values of constants, which paths name one object, and the public
attributes of started servers, clients and connections. Intentional differences are
in ``parity.SURFACE_ALLOWED`` and its neighbours, each with its reason.
"""

import json

import pytest
from parity import compare_surface
from support import run_peer_json


@pytest.fixture(scope="module")
def dumps(ours_python, ref_python):
    return run_peer_json(ref_python, "surface_dump.py"), run_peer_json(ours_python, "surface_dump.py")


def test_dumps_describe_each_implementation(dumps):
    reference, ours = dumps
    assert (reference["impl"], ours["impl"]) == ("reference", "ours")
    # The walk reached the whole package, not just its top (a broken walk would find
    # nothing to compare and pass).
    for dump in dumps:
        assert "peng3dnet.packet.SmartPacket" in dump["objects"]
        assert "peng3dnet.ext.ping.PingableServerMixin" in dump["objects"]
        assert "write_queue" in dump["instances"]["ClientOnServer"]["dir"]


def test_every_name_of_the_original_is_reachable_in_ours(dumps):
    reference, ours = dumps
    problems = compare_surface(reference, ours)
    assert not problems, "differences from the original:\n" + "\n".join(problems)


def test_comparison_finds_what_is_missing(dumps):
    # The comparison itself: take a name, a parameter name and a constant away from ours.
    reference, ours = dumps
    broken = json.loads(json.dumps(ours))
    del broken["objects"]["peng3dnet.packet"]["members"]["STATE_ACTIVE"]
    ping_type = broken["objects"]["peng3dnet.ext.ping.PingConnectionType"]["members"]["send"]
    ping_type["params"][1]["name"] = "data"
    broken["objects"]["peng3dnet.constants"]["members"]["MODE_CHAT"]["value"] = 5
    problems = compare_surface(reference, broken)
    assert "missing: peng3dnet.packet.STATE_ACTIVE (value)" in problems
    assert any(p.startswith("signature: peng3dnet.ping.PingConnectionType.send") for p in problems)
    assert "value: peng3dnet.constants.MODE_CHAT is 5, not 4" in problems


def test_importing_ours_has_no_side_effects(dumps):
    _, ours = dumps
    assert ours["import"] == {"new_loggers": [], "new_threads": 0, "new_files": 0}
