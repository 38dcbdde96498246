"""Mechanical comparison of peng3dnet-rs with the original (see test_parity_*.py).

``compare_surface(reference, ours)`` takes two outputs of ``peers/surface_dump.py``
and returns every difference an app could trip over, one line each; the allow-lists
below hold the reviewed intentional ones, each with its reason.
"""

import fnmatch

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
