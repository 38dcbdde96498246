"""Every public name of the documented API exists at its original import path."""

import importlib
import inspect
import struct

import pytest

import peng3dnet

MODULE_NAMES = {
    "peng3dnet.net": ["STRUCT_HEADER", "STRUCT_LENGTH32", "Server", "ClientOnServer", "Client"],
    "peng3dnet.packet": ["Packet", "SmartPacket", "PrintPacket"],
    "peng3dnet.packet.internal": [
        "HelloPacket",
        "SetTypePacket",
        "HandshakePacket",
        "HandshakeAcceptPacket",
        "CloseConnectionPacket",
    ],
    "peng3dnet.conntypes": ["ConnectionType", "ClassicConnectionType"],
    "peng3dnet.registry": ["BaseRegistry", "PacketRegistry"],
    "peng3dnet.util": ["normalize_addr_formatted", "normalize_addr_socketstyle", "parse_address"],
    "peng3dnet.errors": [
        "InvalidAddressError",
        "InvalidPortError",
        "InvalidHostError",
        "UnsupportedAddressError",
        "InvalidSmartPacketActionError",
        "TimedOutError",
        "FailedPingError",
        "RegistryError",
        "AlreadyRegisteredError",
    ],
    "peng3dnet.version": ["VERSION", "RELEASE", "PROTOVERSION"],
}

METHODS = {
    "Server": [
        "addConnType",
        "bind",
        "close_connection",
        "genCID",
        "initialize",
        "interrupt",
        "join",
        "process",
        "process_async",
        "process_forever",
        "register_packet",
        "runAsync",
        "runBlocking",
        "sendEvent",
        "send_message",
        "shutdown",
        "stop",
    ],
    "ClientOnServer": ["close", "on_close", "on_connect", "on_handshake_complete", "on_receive", "on_send"],
    "Client": [
        "addConnType",
        "close",
        "close_connection",
        "connect",
        "initialize",
        "interrupt",
        "join",
        "on_close",
        "on_connect",
        "on_handshake_complete",
        "on_receive",
        "on_send",
        "process",
        "process_async",
        "process_forever",
        "pump_write_buffer",
        "register_packet",
        "runAsync",
        "runBlocking",
        "sendEvent",
        "send_message",
        "stop",
        "wait_for_close",
        "wait_for_connection",
    ],
}

SIGNATURES = {
    ("Server", "__init__"): ["peng", "addr", "clientcls", "cfg"],
    ("Client", "__init__"): ["peng", "addr", "cfg", "conntype"],
    ("ClientOnServer", "__init__"): ["server", "conn", "addr", "cid"],
    ("Server", "send_message"): ["ptype", "data", "cid"],
    ("Client", "send_message"): ["ptype", "data", "cid"],
    ("Server", "shutdown"): ["join", "timeout", "reason"],
    ("Server", "process"): ["wait", "timeout"],
    ("Server", "close_connection"): ["cid", "reason"],
    ("Client", "close_connection"): ["cid", "reason"],
    ("Server", "register_packet"): ["name", "obj", "n"],
}


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, names in MODULE_NAMES.items() for n in names])
def test_name_exists(module, name):
    assert hasattr(importlib.import_module(module), name)


@pytest.mark.parametrize("module", sorted(MODULE_NAMES))
def test_star_import_exports(module):
    namespace = {}
    exec(f"from {module} import *", namespace)
    for name in MODULE_NAMES[module]:
        assert name in namespace, f"{name} missing from {module}.__all__"


@pytest.mark.parametrize(
    "name",
    [
        "Server",
        "Client",
        "ClientOnServer",
        "PacketRegistry",
        "BaseRegistry",
        "ConnectionType",
        "ClassicConnectionType",
        "TimedOutError",
        "STATE_ACTIVE",
        "parse_address",
        "PROTOVERSION",
    ],
)
def test_package_reexports(name):
    obj = getattr(peng3dnet, name)
    modules = ("net", "registry", "conntypes", "errors", "constants", "util", "version")
    assert any(getattr(importlib.import_module(f"peng3dnet.{m}"), name, None) is obj for m in modules)


@pytest.mark.parametrize(("cls", "method"), [(c, m) for c, ms in METHODS.items() for m in ms])
def test_documented_methods(cls, method):
    assert callable(getattr(getattr(peng3dnet.net, cls), method))


@pytest.mark.parametrize(("key", "params"), SIGNATURES.items(), ids=str)
def test_signatures(key, params):
    cls, method = key
    signature = inspect.signature(getattr(getattr(peng3dnet.net, cls), method))
    names = [p for p in signature.parameters if p != "self"]
    assert names[: len(params)] == params


def test_structs():
    from peng3dnet.net import STRUCT_HEADER, STRUCT_LENGTH32

    assert isinstance(STRUCT_HEADER, struct.Struct) and STRUCT_HEADER.format == "!IH"
    assert isinstance(STRUCT_LENGTH32, struct.Struct) and STRUCT_LENGTH32.format == "!I"


def test_smartpacket_defaults():
    from peng3dnet.packet import SmartPacket

    assert SmartPacket.state == 64
    assert SmartPacket.side is None
    assert SmartPacket.min_sslsec_level == 0
    assert SmartPacket.mode is None
    assert SmartPacket.conntype is None
    assert SmartPacket.invalid_action == "ignore"


def test_internal_packets_are_packets():
    from peng3dnet.packet import Packet, SmartPacket, internal

    for name in MODULE_NAMES["peng3dnet.packet.internal"]:
        assert issubclass(getattr(internal, name), Packet)
    assert issubclass(internal.HelloPacket, SmartPacket)
    assert internal.HandshakePacket.invalid_action == "close"
