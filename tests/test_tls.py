"""TLS over real loopback sockets: the `net.ssl.*` options, the security levels each setup
reaches, and fast, clear failures for every way a TLS setup can be wrong."""

import os
import time

import pytest
from support import Recorder, packets_mixin, wait_until
from tls_certs import make_pki

import peng3dnet
from peng3dnet.constants import SSLSEC_BOTHAUTH, SSLSEC_ENCRYPTED, SSLSEC_NONE, SSLSEC_SERVERAUTH
from peng3dnet.errors import ConnectionClosedError, TLSConfigError, TLSError
from peng3dnet.packet import SmartPacket

FAST = 3.0  # seconds within which a failure must be reported


class EchoServer(peng3dnet.Server):
    _reg_packets_test = packets_mixin("test:echo")


class EchoClient(peng3dnet.Client):
    _reg_packets_test = packets_mixin("test:echo", cls=Recorder)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def server_cfg(pki, cert="server", **extra):
    return {
        "net.ssl.enabled": True,
        "net.ssl.server.certfile": pki[cert],
        "net.ssl.server.keyfile": pki[f"{cert}_key"],
        **extra,
    }


def client_cfg(**extra):
    return {"net.ssl.enabled": True, **extra}


def connect(net, server, cfg, host="127.0.0.1", timeout=5.0):
    return net.client(server, EchoClient, cfg=cfg, addr=(host, net.port(server)), timeout=timeout)


def echo(server, client, payload="hello over TLS"):
    client.send_message("test:echo", payload)
    received = client.test_packets["test:echo"].received
    assert wait_until(lambda: received, timeout=10)
    return received[-1][0]


def level_on_server(server):
    (conn,) = server.clients.values()
    return conn.ssl_seclevel


def test_pinned_self_signed_certificate(net, pki):
    # The common peng3dnet setup: the server's own self-signed certificate is what the
    # client trusts (the original read it from net.ssl.server.certfile on both sides).
    server = net.server(EchoServer, cfg=server_cfg(pki, "self_signed"))
    client = connect(
        net,
        server,
        client_cfg(**{"net.ssl.server.certfile": pki["self_signed"], "net.ssl.client.force_verify": True}),
    )
    assert client.ssl_seclevel == SSLSEC_SERVERAUTH
    assert level_on_server(server) == SSLSEC_SERVERAUTH
    assert echo(server, client) == "hello over TLS"
    big = {"blob": "x" * 300_000, "n": list(range(1000))}  # compressed, many TLS records
    client.test_packets["test:echo"].received.clear()
    assert echo(server, client, big) == big


def test_large_messages_are_not_left_in_the_tls_buffer(net, pki):
    # A TLS stream keeps the tail of what it encrypted until the socket has room; the
    # writer must flush it, not leave it for the next packet. Without heartbeats (off
    # here) nothing else would ever be written: the echo would never arrive.
    quiet = {"net.keepalive.enabled": False, "net.limits.max_frame": 1 << 26}
    server = net.server(EchoServer, cfg=server_cfg(pki, "self_signed", **quiet))
    client = connect(
        net,
        server,
        client_cfg(**{"net.ssl.server.certfile": pki["self_signed"], **quiet}),
    )
    received = client.test_packets["test:echo"].received
    for round_trip in range(6):
        payload = os.urandom(8 << 20)  # incompressible: sent as it is
        client.send_message("test:echo", payload)
        assert wait_until(lambda n=round_trip: len(received) > n, timeout=5), f"round trip {round_trip}"
        assert received[-1][0] == payload


def test_ca_signed_certificate_with_hostname_check(net, pki):
    server = net.server(EchoServer, cfg=server_cfg(pki))
    client = connect(
        net,
        server,
        client_cfg(
            **{
                "net.ssl.cafile": pki["ca"],
                "net.ssl.client.force_verify": True,
                "net.ssl.client.check_hostname": True,
            }
        ),
        host="localhost",
    )
    assert client.ssl_seclevel == SSLSEC_SERVERAUTH
    assert echo(server, client) == "hello over TLS"


def test_ca_signed_without_hostname_check_is_only_encrypted(net, pki):
    server = net.server(EchoServer, cfg=server_cfg(pki))
    client = connect(net, server, client_cfg(**{"net.ssl.cafile": pki["ca"]}))
    assert client.ssl_seclevel == SSLSEC_ENCRYPTED
    assert echo(server, client) == "hello over TLS"


def test_unverified_server_is_encrypted_but_not_authenticated(net, pki):
    # force_verify off: an untrusted certificate is accepted, and the level says so.
    server = net.server(EchoServer, cfg=server_cfg(pki, "self_signed"))
    client = connect(net, server, client_cfg(**{"net.ssl.cafile": pki["other_ca"]}))
    assert client.ssl_seclevel == SSLSEC_ENCRYPTED
    assert echo(server, client) == "hello over TLS"


def test_plain_connections_are_level_none(net):
    server = net.server(EchoServer)
    client = net.client(server, EchoClient)
    assert client.ssl_seclevel == SSLSEC_NONE
    assert level_on_server(server) == SSLSEC_NONE


@pytest.mark.parametrize(
    ("cert", "cfg", "host", "expected"),
    [
        ("server", {"net.ssl.cafile": "other_ca"}, "127.0.0.1", "not trusted"),
        ("expired", {"net.ssl.cafile": "ca"}, "127.0.0.1", "xpired"),
        ("self_signed", {"net.ssl.cafile": "ca"}, "127.0.0.1", "not trusted"),
        (
            "wrong_host",
            {"net.ssl.cafile": "ca", "net.ssl.client.check_hostname": True},
            "localhost",
            "does not name",
        ),
    ],
    ids=["wrong CA", "expired", "self-signed without trust", "hostname mismatch"],
)
def test_untrusted_server_fails_fast_with_a_reason(net, pki, cert, cfg, host, expected):
    server = net.server(EchoServer, cfg=server_cfg(pki, cert))
    cfg = {k: pki[v] if k == "net.ssl.cafile" else v for k, v in cfg.items()}
    started = time.monotonic()
    with pytest.raises(TLSError, match=expected):
        connect(net, server, client_cfg(**{"net.ssl.client.force_verify": True, **cfg}), host=host)
    assert time.monotonic() - started < FAST
    assert wait_until(lambda: not server.clients and server._core.connection_count == 0)


def test_mutual_authentication(net, pki):
    server = net.server(EchoServer, cfg=server_cfg(pki, **{"net.ssl.cafile": pki["ca"]}))
    client = connect(
        net,
        server,
        client_cfg(
            **{
                "net.ssl.server.certfile": pki["ca"],
                "net.ssl.client.force_verify": True,
                "net.ssl.client.check_hostname": True,
                "net.ssl.client.certfile": pki["client"],
                "net.ssl.client.keyfile": pki["client_key"],
            }
        ),
        host="localhost",
    )
    assert client.ssl_seclevel == SSLSEC_BOTHAUTH
    assert level_on_server(server) == SSLSEC_BOTHAUTH
    assert echo(server, client) == "hello over TLS"


@pytest.mark.parametrize("cert", [None, "stranger"], ids=["no certificate", "untrusted certificate"])
def test_required_client_certificate_is_enforced(net, pki, cert):
    server = net.server(EchoServer, cfg=server_cfg(pki, **{"net.ssl.cafile": pki["ca"]}))
    cfg = client_cfg(**{"net.ssl.cafile": pki["ca"]})
    if cert:
        cfg.update({"net.ssl.client.certfile": pki[cert], "net.ssl.client.keyfile": pki[f"{cert}_key"]})
    started = time.monotonic()
    # TLS 1.3 reports a refused client certificate after the client's side of the
    # handshake: either the handshake fails or the connection closes at once.
    with pytest.raises((TLSError, ConnectionClosedError)):
        connect(net, server, cfg)
    assert time.monotonic() - started < FAST
    assert wait_until(lambda: server._core.connection_count == 0)


def test_optional_client_certificate(net, pki):
    server = net.server(
        EchoServer, cfg=server_cfg(pki, **{"net.ssl.cafile": pki["ca"], "net.ssl.server.force_verify": False})
    )
    client = connect(net, server, client_cfg(**{"net.ssl.cafile": pki["ca"]}))
    assert level_on_server(server) == SSLSEC_SERVERAUTH
    assert echo(server, client) == "hello over TLS"


def test_plaintext_client_against_tls_server_is_told_why(net, pki):
    server = net.server(EchoServer, cfg=server_cfg(pki))
    started = time.monotonic()
    with pytest.raises(ConnectionClosedError) as closed:
        net.client(server, EchoClient, timeout=5)
    assert closed.value.reason == "tlsrequired"
    assert time.monotonic() - started < FAST + 1
    # The server carries on with TLS clients.
    client = connect(net, server, client_cfg())
    assert echo(server, client) == "hello over TLS"


def test_tls_client_against_plaintext_server_fails_fast(net):
    server = net.server(EchoServer)
    started = time.monotonic()
    with pytest.raises(TLSError, match="does not seem to speak TLS"):
        net.client(server, EchoClient, cfg=client_cfg())
    assert time.monotonic() - started < FAST
    # The plaintext server carries on with plaintext clients.
    client = net.client(server, EchoClient)
    assert echo(server, client) == "hello over TLS"


def test_unusable_files_are_reported_at_bind_and_connect(net, pki, tmp_path):
    missing = str(tmp_path / "nowhere.key")
    with pytest.raises(TLSConfigError, match=r"nowhere\.key"):
        net.server(EchoServer, cfg={**server_cfg(pki), "net.ssl.server.keyfile": missing})
    with pytest.raises(TLSConfigError, match=r"net\.ssl\.server\.certfile"):
        net.server(EchoServer, cfg={"net.ssl.enabled": True})
    with pytest.raises(TLSConfigError, match="does not fit"):
        net.server(EchoServer, cfg={**server_cfg(pki), "net.ssl.server.keyfile": pki["client_key"]})
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    server = net.server(EchoServer, cfg=server_cfg(pki))
    with pytest.raises(TLSConfigError, match=r"garbage\.pem"):
        connect(net, server, client_cfg(**{"net.ssl.cafile": str(garbage)}))
    with pytest.raises(TLSConfigError, match=r"net\.ssl\.cafile"):
        connect(net, server, client_cfg(**{"net.ssl.client.force_verify": True}))


class Secret(SmartPacket):
    min_sslsec_level = SSLSEC_SERVERAUTH

    def __init__(self, reg, peer, obj=None):
        super().__init__(reg, peer, obj)
        self.received = []

    def receive(self, msg, cid=None):
        self.received.append(msg)


class SecretServer(peng3dnet.Server):
    def _reg_packets_secret(self):
        self.register_packet("test:secret", Secret(self.registry, self))


class SecretClient(peng3dnet.Client):
    _reg_packets_secret = SecretServer._reg_packets_secret


@pytest.mark.parametrize(("pinned", "delivered"), [(True, True), (False, False)])
def test_min_sslsec_level_is_enforced_on_send(net, pki, pinned, delivered):
    server = net.server(SecretServer, cfg=server_cfg(pki, "self_signed"))
    cfg = client_cfg(**({"net.ssl.server.certfile": pki["self_signed"]} if pinned else {}))
    client = net.client(server, SecretClient, cfg=cfg)
    client.send_message("test:secret", "for authenticated servers only")
    received = server.registry.getObj("test:secret").received
    if delivered:
        assert wait_until(lambda: received)
    else:
        time.sleep(0.3)
        assert received == []


def test_openssl_client_interoperates(net, pki):
    # Python's ssl module (OpenSSL) as the client: the TLS layer is standard, and the
    # server's hello frame arrives inside it.
    import socket
    import ssl

    server = net.server(EchoServer, cfg=server_cfg(pki, "self_signed"))
    context = ssl.create_default_context(cafile=pki["self_signed"])
    context.check_hostname = False
    with socket.create_connection(("127.0.0.1", net.port(server)), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            frame = tls.recv(1 << 16)
    (length,) = peng3dnet.net.STRUCT_LENGTH32.unpack_from(frame)
    pid, _flags = peng3dnet.net.STRUCT_HEADER.unpack_from(frame, 4)
    assert pid == 1 and length == len(frame) - 4  # the hello packet
