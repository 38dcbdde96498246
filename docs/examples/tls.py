"""TLS: a server with a self-signed certificate, and a client that pins it.

Makes a throw-away certificate with the ``cryptography`` package (pip install
cryptography); a real server would use its own PEM files.
"""

import datetime
import ipaddress
import pathlib
import tempfile
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import peng3dnet
from peng3dnet.constants import SSLSEC_SERVERAUTH
from peng3dnet.packet import SmartPacket

answered = threading.Event()


def self_signed_certificate(directory):
    """Writes cert.pem and key.pem for 127.0.0.1 into ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


class Secret(SmartPacket):
    # Never sent unless the server's certificate was verified.
    min_sslsec_level = SSLSEC_SERVERAUTH

    def receive(self, msg, cid=None):
        if cid is not None:
            self.peer.send_message("vault:secret", {"answer": 42}, cid)
        else:
            print("over TLS:", msg)
            answered.set()


class VaultServer(peng3dnet.Server):
    def _reg_packets_vault(self):
        self.register_packet("vault:secret", Secret(self.registry, self))


class VaultClient(peng3dnet.Client):
    _reg_packets_vault = VaultServer._reg_packets_vault


with tempfile.TemporaryDirectory() as tmp:
    cert, key = self_signed_certificate(pathlib.Path(tmp))
    server_cfg = {"net.ssl.enabled": True, "net.ssl.server.certfile": cert, "net.ssl.server.keyfile": key}
    server = VaultServer(addr=("127.0.0.1", 0), cfg=server_cfg)
    server.bind()
    server.runAsync()
    server.process_async()
    port = server.sock.getsockname()[1]

    # The client trusts exactly this certificate ("pinning") and refuses any other.
    client_cfg = {"net.ssl.enabled": True, "net.ssl.cafile": cert, "net.ssl.client.force_verify": True}
    client = VaultClient(addr=("127.0.0.1", port), cfg=client_cfg)
    client.runAsync()
    client.process_async()
    client.wait_for_connection(5)
    print("security level:", client.ssl_seclevel, "(SSLSEC_SERVERAUTH is", SSLSEC_SERVERAUTH, ")")
    client.send_message("vault:secret", {"question": "?"})
    assert answered.wait(5)

    client.close_connection(reason="done")
    server.shutdown(join=True, timeout=5)
