"""Certificates for the TLS tests, made at test time with ``cryptography``.

``make_pki(directory)`` writes PEM files and returns their paths by name:

* ``ca``: a certificate authority; ``other_ca``: an unrelated one.
* ``server``: signed by ``ca`` for ``localhost`` and ``127.0.0.1``.
* ``wrong_host``: signed by ``ca`` for ``example.invalid`` only.
* ``expired``: signed by ``ca`` for ``localhost``, valid until yesterday.
* ``self_signed``: a self-signed server certificate (not a CA), for pinning.
* ``client``: a client certificate signed by ``ca``; ``stranger``: one by ``other_ca``.

Each certificate ``x`` has ``x`` (the certificate) and ``x_key`` (its private key).
"""

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory, name, cert, key):
    cert_path = directory / f"{name}.pem"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {name: str(cert_path), f"{name}_key": str(key_path)}


def _certificate(subject, key, issuer, issuer_key, *, ca, hosts=(), client=False, days=(-1, 30)):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + days[0] * DAY)
        .not_valid_after(now + days[1] * DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if hosts:
        names = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory):
    paths = {}
    ca_key, other_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("peng3dnet test CA", ca_key, "peng3dnet test CA", ca_key, ca=True)
    other = _certificate("unrelated CA", other_key, "unrelated CA", other_key, ca=True)
    paths.update(_write(directory, "ca", ca, ca_key))
    paths.update(_write(directory, "other_ca", other, other_key))
    local = ("localhost", "127.0.0.1")
    leaves = {
        "server": dict(issuer=("peng3dnet test CA", ca_key), hosts=local),
        "wrong_host": dict(issuer=("peng3dnet test CA", ca_key), hosts=("example.invalid",)),
        "expired": dict(issuer=("peng3dnet test CA", ca_key), hosts=local, days=(-30, -1)),
        "self_signed": dict(issuer=None, hosts=local),
        "client": dict(issuer=("peng3dnet test CA", ca_key), client=True),
        "stranger": dict(issuer=("unrelated CA", other_key), client=True),
    }
    for name, spec in leaves.items():
        key = ec.generate_private_key(ec.SECP256R1())
        issuer, issuer_key = spec.pop("issuer") or (name, key)
        cert = _certificate(name, key, issuer, issuer_key, ca=False, **spec)
        paths.update(_write(directory, name, cert, key))
    return paths
