"""peng3dnet-rs calls the overridable methods the original calls, with the same arguments.

``peers/call_trace.py`` subclasses every class apps subclass with every library method
wrapped, runs the same flows (handshake, Packet and SmartPacket both ways including
failing rules and ``invalid_action``, custom connection types, closes from either side,
shutdown, ping, a replaced registry) under each implementation in a subprocess, and
records every call. :func:`parity.compare_calls` compares them; the intended
differences are in ``parity.CALLS_ALLOWED``, each with its reason.
"""

import json

import pytest
from parity import compare_calls
from support import run_peer_json


@pytest.fixture(scope="module")
def traces(ours_python, ref_python):
    reference = run_peer_json(ref_python, "call_trace.py")
    # The original can leave a packet queued from another thread unsent until its next
    # send (REFERENCE bug 21): under load a flow of it stalled (its handshake timed out,
    # and the next flow failed after it; 1 full test run in ~8). A flow that failed
    # under the original is run again, alone, up to twice; ours runs once.
    for _ in range(2):
        failed = [flow for flow, result in reference.items() if result["error"]]
        if not failed:
            break
        reference.update(run_peer_json(ref_python, "call_trace.py", *failed))
    return reference, run_peer_json(ours_python, "call_trace.py")


def test_every_flow_ran_under_both(traces):
    for trace in traces:
        for flow, result in trace.items():
            assert result["error"] is None, (flow, result["error"])
            assert len(result["calls"]) > 50, flow


def test_ours_calls_what_the_original_calls(traces):
    reference, ours = traces
    problems = compare_calls(reference, ours)
    assert not problems, "calls that differ from the original:\n" + "\n".join(problems)


def test_comparison_finds_a_missing_call(traces):
    # The comparison itself: drop one hook call and change one argument in ours.
    reference, ours = traces
    broken = json.loads(json.dumps(ours))
    calls = broken["echo"]["calls"]
    on_send = next(i for i, c in enumerate(calls) if c[0] == "conn" and c[1] == "on_send")
    del calls[on_send]
    receive = next(c for c in calls if c[1] == "_receive")
    receive[2] = [*receive[2], 99]
    problems = compare_calls(reference, broken)
    assert any(p.startswith('echo: missing (original 1, ours 0): ["conn", "on_send"') for p in problems)
    assert any(p.startswith("echo: missing") and '"_receive"' in p for p in problems)
    assert any(p.startswith("echo: extra") and '"_receive"' in p and "99" in p for p in problems)
