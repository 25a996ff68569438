"""TLS client contexts built from stored PEM material, and readable TLS failures."""

from __future__ import annotations

import os
import ssl
import tempfile
from datetime import UTC, datetime

from cryptography import x509


class TlsMaterialError(ValueError):
    """PEM material that cannot work, naming the request field at fault (``tls.ca``,
    ``tls.cert`` or ``tls.key``) so a form shows the reason next to that field."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def build_ssl_context(
    ca_pem: str | None, cert_pem: str | None, key_pem: str | None, verify: bool = True
) -> ssl.SSLContext:
    """A client context trusting only ``ca_pem`` (system CAs when none is given).

    ``verify=False`` is an explicit admin choice for lab engines; it is never the default.
    """
    if ca_pem:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            ctx.load_verify_locations(cadata=ca_pem)
        except ssl.SSLError as exc:
            raise TlsMaterialError(
                f"the CA certificate is not valid PEM: {exc.reason}", "tls.ca"
            ) from exc
        except TypeError as exc:  # not ASCII: the ssl module refuses it before OpenSSL
            raise TlsMaterialError(
                "the CA certificate is not valid PEM (not ASCII)", "tls.ca"
            ) from exc
    else:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_pem or key_pem:
        if not (cert_pem and key_pem):
            raise TlsMaterialError(
                "a client certificate needs both cert and key", "tls.cert" if key_pem else "tls.key"
            )
        _load_client_identity(ctx, cert_pem, key_pem)
    return ctx


def _load_client_identity(ctx: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    # The ssl module loads a client identity only from files. They live in a private
    # 0700 directory as 0600 files for the duration of this call and are removed at
    # once: OpenSSL keeps the parsed key in memory, so nothing stays on disk.
    with tempfile.TemporaryDirectory(prefix="archnest-tls-") as tmp:
        os.chmod(tmp, 0o700)
        cert_path = os.path.join(tmp, "cert.pem")
        key_path = os.path.join(tmp, "key.pem")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(data)
        try:
            # A passphrase-protected key would make OpenSSL prompt on the server's
            # terminal; an empty passphrase fails it at once instead.
            ctx.load_cert_chain(cert_path, key_path, password=_no_passphrase)
        except ssl.SSLError as exc:
            raise _identity_error(cert_pem, key_pem, exc) from exc


def _no_passphrase() -> bytes:
    return b""


def _identity_error(cert_pem: str, key_pem: str, exc: ssl.SSLError) -> TlsMaterialError:
    """Which of the two failed to load, as the field to fix."""
    try:
        x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        return TlsMaterialError("the client certificate is not a valid PEM certificate", "tls.cert")
    if "ENCRYPTED" in key_pem:
        return TlsMaterialError(
            "the client key is protected by a passphrase: give it without one "
            "(openssl pkey -in key.pem -out key-plain.pem)",
            "tls.key",
        )
    return TlsMaterialError(
        f"client certificate and key do not load or do not match: {exc.reason}", "tls.key"
    )


# OpenSSL alert reasons (what the *engine* told us about our client certificate).
_ALERTS = {
    "TLSV1_ALERT_UNKNOWN_CA": "the engine does not trust our client certificate (unknown CA)",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the engine rejected our client certificate: expired",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the engine rejected our client certificate (bad certificate)",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the engine rejected our client certificate",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the engine requires a client certificate",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "TLS handshake failed (client certificate missing?)",
    "WRONG_VERSION_NUMBER": "the engine does not speak TLS on this port (use tcp://?)",
}


def describe_ssl_error(exc: ssl.SSLError) -> str:
    """A short, human reason for a TLS failure, distinguishing whose certificate failed."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        code = getattr(exc, "verify_code", None)
        if code == 10 or "expired" in detail:
            return f"the engine's certificate has expired ({detail})"
        if code in (18, 19, 20, 21) or "issuer" in detail or "self-signed" in detail:
            return f"the engine's certificate is not signed by the configured CA ({detail})"
        if "mismatch" in detail or "IP address" in detail or "hostname" in detail:
            return f"the engine's certificate does not match the address ({detail})"
        return f"the engine's certificate failed verification ({detail})"
    reason = exc.reason or ""
    for key, text in _ALERTS.items():
        if key in reason:
            return text
    return f"TLS error: {reason or exc}"


def client_cert_problem(cert_pem: str | None, ca_pem: str | None) -> str | None:
    """Why the engine would refuse our client certificate, as far as we can tell locally.

    Docker's TLS server answers every rejected client certificate with the same alert
    (or, with TLS 1.3, just drops the connection), so the reason is found here instead.
    """
    if not cert_pem:
        return "no client certificate is configured (Docker's TLS port requires one)"
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        return "the client certificate is not valid PEM"
    now = datetime.now(UTC)
    if cert.not_valid_after_utc < now:
        return f"our client certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    if cert.not_valid_before_utc > now:
        return "our client certificate is not valid yet"
    if ca_pem:
        try:
            ca = x509.load_pem_x509_certificate(ca_pem.encode())
        except ValueError:
            return None
        if cert.issuer != ca.subject:
            return (
                f"our client certificate is issued by {cert.issuer.rfc4514_string()!r}, "
                "a CA the engine does not trust (unknown CA)"
            )
    return None
