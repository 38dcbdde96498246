"""Constants, versions and exception classes: the same values and hierarchy as documented."""

import pytest

import peng3dnet
from peng3dnet import constants, errors, version

DOCUMENTED = {
    "MAX_PACKETLENGTH": 4294967295,
    "STRUCT_FORMAT_LENGTH32": "!I",
    "STRUCT_FORMAT_HEADER": "!IH",
    "STATE_INIT": 0,
    "STATE_HANDSHAKE_WAIT1": 1,
    "STATE_HANDSHAKE_WAIT2": 2,
    "STATE_WAITTYPE": 3,
    "STATE_HELLOWAIT": 4,
    "STATE_ACTIVE": 64,
    "STATE_LOGGEDIN": 65,
    "STATE_CLOSED": 128,
    "MODE_NOTSET": 0,
    "MODE_CLOSED": 1,
    "MODE_PING": 2,
    "MODE_PLAY": 3,
    "MODE_CHAT": 4,
    "CONNTYPE_NOTSET": "_notset",
    "CONNTYPE_CLASSIC": "classic",
    "CONNTYPE_PING": "ping",
    "FLAG_COMPRESSED": 1,
    "FLAG_ENCRYPTED_AES": 2,
    "SIDE_CLIENT": 0,
    "SIDE_SERVER": 1,
    "SSLSEC_NONE": 0,
    "SSLSEC_WRAPPED": 1,
    "SSLSEC_ENCRYPTED": 2,
    "SSLSEC_SERVERAUTH": 3,
    "SSLSEC_BOTHAUTH": 4,
}

DOCUMENTED_DEFAULTS = {
    "net.server.addr": None,
    "net.server.addr.host": "0.0.0.0",
    "net.server.addr.port": 8080,
    "net.client.addr": None,
    "net.client.addr.host": "localhost",
    "net.client.addr.port": 8080,
    "net.compress.enabled": True,
    "net.compress.threshold": 8192,
    "net.compress.level": 6,
    "net.encrypt.enabled": False,
    "net.ssl.enabled": False,
    "net.ssl.force": True,
    "net.ssl.cafile": None,
    "net.ssl.server.force_verify": True,
    "net.ssl.server.certfile": None,
    "net.ssl.server.keyfile": None,
    "net.ssl.client.check_hostname": False,
    "net.ssl.client.force_verify": False,
    "net.events.enable": "auto",
    "net.debug.print.recv": False,
    "net.debug.print.send": False,
    "net.debug.print.connect": False,
    "net.debug.print.close": False,
    "net.registry.autosync": True,
    "net.registry.missingpacketaction": "closeconnection",
}


@pytest.mark.parametrize(("name", "value"), sorted(DOCUMENTED.items()))
def test_documented_constant(name, value):
    assert getattr(constants, name) == value
    assert type(getattr(constants, name)) is type(value)
    assert getattr(peng3dnet, name) == value, "re-exported at package level"


def test_star_import_exports_exactly_the_documented_names():
    namespace = {}
    exec("from peng3dnet.constants import *", namespace)
    exported = {k for k in namespace if not k.startswith("__")}
    assert exported == set(DOCUMENTED) | {"DEFAULT_CONFIG"}


@pytest.mark.parametrize(("key", "value"), sorted(DOCUMENTED_DEFAULTS.items()))
def test_default_config(key, value):
    assert constants.DEFAULT_CONFIG[key] == value


def test_protocol_version():
    assert version.PROTOVERSION == 2
    assert isinstance(version.VERSION, str)
    assert isinstance(version.RELEASE, str)
    assert peng3dnet.PROTOVERSION == 2


HIERARCHY = {
    "InvalidAddressError": ValueError,
    "InvalidPortError": "InvalidAddressError",
    "InvalidHostError": "InvalidAddressError",
    "UnsupportedAddressError": NotImplementedError,
    "InvalidSmartPacketActionError": ValueError,
    "TimedOutError": RuntimeError,
    "FailedPingError": "TimedOutError",
    "RegistryError": ValueError,
    "AlreadyRegisteredError": "RegistryError",
}


@pytest.mark.parametrize(("name", "base"), sorted(HIERARCHY.items(), key=str))
def test_exception_hierarchy(name, base):
    cls = getattr(errors, name)
    base_cls = getattr(errors, base) if isinstance(base, str) else base
    assert issubclass(cls, base_cls)
    assert getattr(peng3dnet, name) is cls
    with pytest.raises(base_cls):
        raise cls("message")
