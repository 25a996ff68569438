"""Certificates for the Docker Engine mutual-TLS listener, generated per run."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class TlsMaterial:
    """One client identity: the CA to trust plus a client cert/key, as PEM and as files."""

    ca_pem: str
    cert_pem: str
    key_pem: str
    ca_path: str
    cert_path: str
    key_path: str


def _key() -> ec.EllipticCurvePrivateKey:
    # P-256 instead of RSA: generation is instant and Go's TLS stack accepts it.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ArchNest test"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ca(cn: str, now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    cn: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    *,
    server: bool,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def _write(directory: Path, stem: str, ca: str, cert: str, key: str) -> TlsMaterial:
    ca_path, cert_path, key_path = (directory / f"{stem}-{n}.pem" for n in ("ca", "cert", "key"))
    ca_path.write_text(ca)
    cert_path.write_text(cert)
    key_path.write_text(key)
    key_path.chmod(0o600)
    return TlsMaterial(ca, cert, key, str(ca_path), str(cert_path), str(key_path))


@dataclass
class TlsBundle:
    server: TlsMaterial  # what dockerd presents (ca = the CA it verifies clients against)
    client: TlsMaterial  # valid client identity signed by the real CA
    rogue: TlsMaterial  # client signed by an unrelated CA; ca_pem is that rogue CA
    expired: TlsMaterial  # client signed by the real CA but no longer valid


def generate(directory: Path) -> TlsBundle:
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    valid = {"not_before": now - dt.timedelta(days=1), "not_after": now + dt.timedelta(days=30)}

    ca_key, ca_cert = _ca("ArchNest test CA", now)
    ca = _cert_pem(ca_cert)
    srv_key, srv_cert = _leaf("127.0.0.1", ca_key, ca_cert, server=True, **valid)
    cli_key, cli_cert = _leaf("archnest-client", ca_key, ca_cert, server=False, **valid)
    exp_key, exp_cert = _leaf(
        "archnest-expired",
        ca_key,
        ca_cert,
        server=False,
        not_before=now - dt.timedelta(days=10),
        not_after=now - dt.timedelta(days=1),
    )
    rogue_ca_key, rogue_ca_cert = _ca("Rogue CA", now)
    rogue_key, rogue_cert = _leaf(
        "archnest-client", rogue_ca_key, rogue_ca_cert, server=False, **valid
    )
    return TlsBundle(
        server=_write(directory, "server", ca, _cert_pem(srv_cert), _key_pem(srv_key)),
        client=_write(directory, "client", ca, _cert_pem(cli_cert), _key_pem(cli_key)),
        rogue=_write(
            directory, "rogue", _cert_pem(rogue_ca_cert), _cert_pem(rogue_cert), _key_pem(rogue_key)
        ),
        expired=_write(directory, "expired", ca, _cert_pem(exp_cert), _key_pem(exp_key)),
    )
