"""Mechanical comparison of peng3dnet-rs with the original (see test_parity_*.py).

``compare_surface(reference, ours)`` takes two outputs of ``peers/surface_dump.py``
and returns every difference an app could trip over, one line each; the allow-lists
below hold the reviewed intentional ones, each with its reason.
"""

import fnmatch
import json
import re

# --- surface: names of the original that peng3dnet-rs does not have, on purpose -------
#
# Patterns (fnmatch) of paths, each with the reason it may differ.
SURFACE_ALLOWED = {
    # The original's selector loop. Ours has none: the native core serves the sockets.
    # An app that overrode these replaced the I/O loop itself.
    "*.Server._accept": "selector-loop internal: the native core accepts connections",
    "*.Server._client_ready": "selector-loop internal: the native core reads the sockets",
    "*._sock_ready": "selector-loop internal (Client): the native core reads the socket",
    # Third-party modules the original imported for its own use.
    "peng3dnet.net.peng3d": "the original's dependency; ours needs no peng3d (a peng is any object)",
    "peng3dnet.registry.bidict": "the original's dependency; ours has its own two-way map",
}

# Paths whose signature may differ, with the reason.
SIGNATURE_ALLOWED = {}

# Paths whose value may differ, with the reason.
VALUE_ALLOWED = {
    "*.VERSION": "ours implements API 0.2.0; the published original is 0.1.3a0",
    "*.RELEASE": "ours implements API 0.2.0; the published original is 0.1.3a0",
}

# Public instance attributes of the original that ours may lack, with the reason.
INSTANCE_ALLOWED = {}


def _allowed(path, table):
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in table)


def _params_differ(ref, ours):
    """Why ours's parameters do not accept every call the original's accept, or None."""
    if ref is None or ours is None:
        return None
    ref_names = [p["name"] for p in ref]
    our_names = [p["name"] for p in ours]
    if our_names[: len(ref_names)] != ref_names:
        if any(p["kind"] in ("VAR_POSITIONAL", "VAR_KEYWORD") for p in ours):
            return None
        return f"parameters {our_names} instead of {ref_names}"
    for p in ours[len(ref_names) :]:
        if not p["has_default"] and p["kind"] not in ("VAR_POSITIONAL", "VAR_KEYWORD"):
            return f"added parameter {p['name']!r} has no default"
    for r, o in zip(ref, ours):
        if r["has_default"] and not o["has_default"]:
            return f"parameter {r['name']!r} lost its default"
        if "default" in r and r["default"] != o.get("default", object()):
            return f"parameter {r['name']!r} defaults to {o.get('default')!r}, not {r['default']!r}"
    return None


def _compare_member(path, ref, mine, problems):
    if mine is None:
        problems.append(f"missing: {path} ({ref['kind']})")
        return
    kind = ref["kind"]
    if kind in ("class", "module") and mine.get("kind") != kind:
        problems.append(f"kind: {path} is a {mine.get('kind')}, not a {kind}")
    elif kind == "module" and ref["name"] != mine["name"]:
        problems.append(f"module: {path} is {mine['name']}, not {ref['name']}")
    elif kind in ("function", "staticmethod", "classmethod") and not _allowed(path, SIGNATURE_ALLOWED):
        why = _params_differ(ref.get("params"), mine.get("params"))
        if why:
            problems.append(f"signature: {path}: {why}")
    elif kind == "value" and not _allowed(path, VALUE_ALLOWED):
        if mine.get("kind") != "value":
            problems.append(f"value: {path} is a {mine.get('kind')}, not a {ref['type']} value")
        elif path.endswith(".__all__"):
            # A star import must give every name it gave; order does not matter, and
            # ours may export more (its additions).
            lacking = sorted(set(ref["value"]) - set(mine["value"]))
            if lacking:
                problems.append(f"value: {path} does not export {lacking}")
        elif isinstance(ref["value"], dict) and isinstance(mine["value"], dict):
            for key, value in ref["value"].items():
                if mine["value"].get(key, object()) != value:
                    problems.append(f"value: {path}[{key!r}] is {mine['value'].get(key)!r}, not {value!r}")
        elif mine["value"] != ref["value"]:
            problems.append(f"value: {path} is {mine['value']!r}, not {ref['value']!r}")
    elif kind == "object" and ref.get("format") != mine.get("format"):
        problems.append(f"value: {path} has format {mine.get('format')!r}, not {ref.get('format')!r}")


def compare_surface(reference, ours):
    """Everything reachable in the original that ours lacks or has differently.

    Follows every attribute path of the original from ``peng3dnet`` and the same path
    in ours: each member must exist with the same kind, each function must accept the
    original's parameters (same names, same order; added ones optional), each constant
    must have the same value, and objects that are one in the original (one class
    reached by two paths) must be one in ours."""
    problems = []
    ref_objects, our_objects = reference["objects"], ours["objects"]
    queue = [("peng3dnet", "peng3dnet", "peng3dnet")]
    compared = set()
    counterpart = {}  # original ref -> (ours ref, first path)
    while queue:
        path, ref_name, our_name = queue.pop(0)
        seen = counterpart.setdefault(ref_name, (our_name, path))
        if seen[0] != our_name:
            problems.append(f"identity: {path} is not the same object as {seen[1]}")
            continue
        if (ref_name, our_name) in compared:
            continue
        compared.add((ref_name, our_name))
        ref_members = ref_objects[ref_name]["members"]
        our_members = our_objects.get(our_name, {}).get("members", {})
        for name, ref in sorted(ref_members.items()):
            child = f"{path}.{name}"
            if _allowed(child, SURFACE_ALLOWED):
                continue
            mine = our_members.get(name)
            _compare_member(child, ref, mine, problems)
            if mine is not None and "ref" in ref and "ref" in mine and ref["ref"] in ref_objects:
                queue.append((child, ref["ref"], mine["ref"]))
    for kind, attrs in sorted(reference["instances"].items()):
        have = set(ours["instances"].get(kind, {}).get("dir", ()))
        for name in attrs["vars"]:
            path = f"{kind}().{name}"
            if name.startswith("_") or _allowed(path, INSTANCE_ALLOWED):
                continue
            if name not in have:
                problems.append(f"instance attribute: {path}")
    return problems


# --- calls: which overridable methods each implementation calls ----------------------
#
# peers/call_trace.py runs the same flows under both implementations with every method
# of the library wrapped; compare_calls() lists each call (method and arguments) that
# one made a different number of times than the other. These differences are intended.
# Each entry: (flows it applies to, "missing" (the original makes the call, ours does
# not) or "extra" (the other way), fnmatch pattern of the call as JSON, reason).
_OWN_CLOSE = (
    "the original's client never reports a close it asked for itself with its reason (its "
    "close_connection does not reach on_close; it may report the server's hang-up as "
    "socketclose). Ours reports the reason it sent"
)
_BUG_18 = (
    "REFERENCE bug 18: the original's server reports its own close_connection reason as None "
    "(close() without it, on_close(None), the close event); ours reports the reason"
)
_STOP = (
    "stop() ends the connections here (the original's left its sockets open until the "
    "process ended, so it reported no close): ours reports clientstop / serverstop, and "
    "a server sees a stopped client hang up (close(None), as the original reports a hang-up)"
)
_PING = (
    "the original's pingServer closes with close_connection('pingcomplete'), the reason in "
    "the place of the cid, so that its close packet carries none; ours sends pingcomplete, "
    "and stops its client once it has the answer (the original left it running)"
)
_MIN_SSLSEC = (
    "a packet below its min_sslsec_level is never sent (the original sent it in the clear "
    "and only skipped its send hook): the server never receives t:secure"
)
_SERVER_CLOSE_NONE = (
    '["server", "sendEvent", ["peng3dnet:server.connection.close", {"client": "<conn>", "reason": null}]*'
)

CALLS_ALLOWED = [
    (
        "*",
        "extra",
        '["client", "on_connect", *',
        "REFERENCE bug 19: the original never calls Client.on_connect",
    ),
    ("echo smartpacket", "missing", '["client", *"socketclose"*', _OWN_CLOSE),
    ("echo", "extra", '["client", *"bye"*', _OWN_CLOSE),
    ("smartpacket", "extra", '["client", *"smartpacketinvalid"*', _OWN_CLOSE),
    ("smartpacket", "missing", '[*"needs TLS"*', _MIN_SSLSEC),
    ("smartpacket", "missing", '["server", "receive_packet", ["<packet 73>", 1], {}]', _MIN_SSLSEC),
    ("smartpacket", "missing", '["server", "process_single_packet", *', _MIN_SSLSEC),
    ("server_close shutdown", "missing", '["c*", *, [*null*', _BUG_18),
    ("server_close shutdown", "missing", '["conn", "close", [], {}]', _BUG_18),
    ("server_close shutdown", "missing", _SERVER_CLOSE_NONE, _BUG_18),
    ("server_close", "extra", '[*"kick"*', _BUG_18),
    ("shutdown", "extra", '[*"maintenance"*', _BUG_18),
    (
        "server_close shutdown",
        "missing",
        '["client", *"socketclose"*',
        "after the server's close packet the original's client runs close() again for the hang-up "
        "that follows (on_close once, with whichever reason came first); ours once, with the reason",
    ),
    ("*", "extra", '[*"clientstop"*', _STOP),
    ("*", "extra", '[*"serverstop"*', _STOP),
    ("custom_conntype own_registry", "extra", _SERVER_CLOSE_NONE, _STOP),
    ("custom_conntype own_registry", "extra", '["conn", "*close", [null], {}]', _STOP),
    ("ping", "missing", '[*"reason": null*', _PING),
    ("ping", "missing", '["client", "close_connection", ["pingcomplete"], {}]', _PING),
    ("ping", "missing", '["c*", "*close", [null], {}]', _PING),
    ("ping", "extra", '[*"pingcomplete"*', _PING),
    (
        "ping",
        "missing",
        '["client", *"socketclose"*',
        "the original's pinging client may still run when the server hangs up after its "
        "close packet, and then reports socketclose too (seen in 1 of ~20 runs under load); "
        "ours stops once it has the answer",
    ),
    ("ping", "extra", '["client", "stop"*', _PING),
    ("ping", "extra", '["client", "join"*', _PING),
    ("ping", "extra", '["client", "interrupt"]', _PING),
    ("ping", "extra", '["client", "sendEvent", "peng3dnet:client.interrupt"]', _PING),
    ("ping", "extra", '["client", "sendEvent", ["peng3dnet:client.stop"*', _PING),
]

# Calls whose number depends on timing in both implementations: compared as "made at
# all" rather than counted. receive_data's argument is what one socket read returned
# (the original read 1 KiB at a time), so only that it was called is compared.
_TIMING_METHODS = {"process", "process_forever", "interrupt", "pump_write_buffer"}


def _call_key(call):
    role, method, args, kwargs = call
    if _timing_only(call):
        # How often, and with which waits, is up to each loop: only that it ran counts.
        return json.dumps([role, method, *args[:1]] if method == "sendEvent" else [role, method])
    text = json.dumps([role, method, args, kwargs], sort_keys=True)
    # ours offers heartbeats in hello and settype (an extension the original ignores).
    return re.sub(r', "rs\.[a-z_]+": "<float>"', "", text)


def _timing_only(call):
    _, method, args, _ = call
    if method in _TIMING_METHODS or method == "receive_data":
        return True
    return method == "sendEvent" and bool(args) and str(args[0]).endswith(".interrupt")


def _call_allowed(flow, kind, key):
    for flows, allowed_kind, pattern, _ in CALLS_ALLOWED:
        if allowed_kind != kind or (flows != "*" and flow not in flows.split()):
            continue
        # Only * is a wildcard: the brackets of the JSON text are meant literally.
        if fnmatch.fnmatchcase(key, pattern.replace("[", "[[]")):
            return True
    return False


def compare_calls(reference, ours):
    """Every call one implementation made a different number of times than the other,
    flow by flow, that CALLS_ALLOWED does not explain. Only methods the original has
    are compared (ours has private helpers of its own)."""
    problems = []
    methods = {call[1] for flow in reference.values() for call in flow["calls"]}
    for flow in sorted(reference):
        mine = ours.get(flow)
        if mine is None:
            problems.append(f"{flow}: not run under ours")
            continue
        for name, result in (("the original", reference[flow]), ("ours", mine)):
            if result["error"]:
                problems.append(f"{flow}: failed under {name}: {result['error']}")
        counted, seen = {}, {}
        for side, calls in (("ref", reference[flow]["calls"]), ("ours", mine["calls"])):
            for call in calls:
                if call[1] not in methods:
                    continue
                table = seen if _timing_only(call) else counted
                entry = table.setdefault(_call_key(call), {"ref": 0, "ours": 0})
                entry[side] += 1
        for table, exact in ((counted, True), (seen, False)):
            for key, n in sorted(table.items()):
                if (n["ref"] == n["ours"]) if exact else (bool(n["ref"]) == bool(n["ours"])):
                    continue
                kind = "missing" if n["ref"] > n["ours"] else "extra"
                if not _call_allowed(flow, kind, key):
                    problems.append(f"{flow}: {kind} (original {n['ref']}, ours {n['ours']}): {key}")
    return problems
