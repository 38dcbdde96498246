"""Configuration and address precedence of Server and Client constructors."""

import pytest
from support import FakePeng

import peng3dnet
from peng3dnet.constants import DEFAULT_CONFIG


def test_defaults_without_peng():
    server = peng3dnet.Server()
    assert tuple(server.addr) == ("0.0.0.0", 8080)
    assert server.cfg["net.compress.threshold"] == 8192
    client = peng3dnet.Client()
    assert tuple(client.addr) == ("localhost", 8080)
    assert client.cfg["net.events.enable"] is False


def test_addr_argument_wins():
    server = peng3dnet.Server(addr="127.0.0.1:9999", cfg={"net.server.addr": "10.0.0.1:1"})
    assert tuple(server.addr) == ("127.0.0.1", 9999)
    assert server.cfg["net.server.addr.port"] == 9999


def test_addr_without_port_uses_configured_port():
    server = peng3dnet.Server(addr="127.0.0.1", cfg={"net.server.addr.port": 4321})
    assert tuple(server.addr) == ("127.0.0.1", 4321)
    client = peng3dnet.Client(addr="example.com", cfg={"net.client.addr.port": 99})
    assert tuple(client.addr) == ("example.com", 99)


def test_net_server_addr_before_host_and_port():
    server = peng3dnet.Server(cfg={"net.server.addr": "127.0.0.2:1234", "net.server.addr.host": "1.1.1.1"})
    assert tuple(server.addr) == ("127.0.0.2", 1234)
    server = peng3dnet.Server(cfg={"net.server.addr.host": "127.0.0.3", "net.server.addr.port": 5})
    assert tuple(server.addr) == ("127.0.0.3", 5)
    client = peng3dnet.Client(cfg={"net.client.addr": "h:7"})
    assert tuple(client.addr) == ("h", 7)


def test_tuple_addresses():
    assert tuple(peng3dnet.Client(addr=("127.0.0.1", 5)).addr) == ("127.0.0.1", 5)


def test_invalid_port_is_refused():
    with pytest.raises(peng3dnet.errors.InvalidPortError):
        peng3dnet.Client(addr="host:notaport")


def test_cfg_overrides_and_is_mutable():
    client = peng3dnet.Client(cfg={"net.compress.level": 9})
    assert client.cfg["net.compress.level"] == 9
    client.cfg["net.compress.level"] = 1
    assert client.cfg["net.compress.level"] == 1
    for key, value in DEFAULT_CONFIG.items():
        if key not in (
            "net.events.enable",
            "net.compress.level",
            "net.client.addr.host",
            "net.client.addr.port",
        ):
            assert client.cfg[key] == value


def test_peng_config_stacking_and_events():
    peng = FakePeng({"app.setting": 1})
    server = peng3dnet.Server(peng, cfg={"net.compress.level": 2})
    assert server.peng is peng
    assert server.cfg["net.compress.level"] == 2
    assert server.cfg["app.setting"] == 1, "falls back to the app's config"
    assert server.cfg["net.events.enable"] is True, "events are on with a peng object"


def test_events_can_be_disabled_with_peng():
    peng = FakePeng()
    client = peng3dnet.Client(peng, cfg={"net.events.enable": False})
    client.sendEvent("peng3dnet:test", {})
    assert peng.events == []


def test_side_attributes():
    server, client = peng3dnet.Server(), peng3dnet.Client()
    assert (server.is_server, server.is_client, server.side) == (True, False, peng3dnet.SIDE_SERVER)
    assert (client.is_server, client.is_client, client.side) == (False, True, peng3dnet.SIDE_CLIENT)
    assert client.target_conntype == peng3dnet.CONNTYPE_CLASSIC
    assert client.remote_state == peng3dnet.STATE_INIT
