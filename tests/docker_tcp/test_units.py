"""Pure logic of the Engine API source: URL rules, log line reassembly, list rows,
TLS contexts and the client-certificate diagnosis."""

from __future__ import annotations

import datetime as dt

import pytest
from archnest import LogLineSplitter, LogOptions, summary_from_engine_list
from archnest_docker_tcp.client import EngineConfig, validate_url
from archnest_docker_tcp.logs import log_params
from archnest_docker_tcp.tlsconf import TlsMaterialError, build_ssl_context, client_cert_problem
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@pytest.mark.parametrize(
    "url", ["unix:///var/run/docker.sock", "tcp://10.0.0.5:2375", "https://host.lan:2376"]
)
def test_valid_urls(url: str) -> None:
    assert validate_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "",
        "http://h:2375",
        "ssh://h",
        "unix://rel.sock",
        "tcp://h",
        "tcp://h:0",
        "tcp://h:99999",
        "tcp://h:2375/x",
        "https://:2376",
    ],
)
def test_invalid_urls(url: str) -> None:
    with pytest.raises(ValueError):
        validate_url(url)


def test_engine_config_repr_hides_key_material() -> None:
    cfg = EngineConfig(1, "e", "https://h:1", tls_key="-----BEGIN PRIVATE KEY-----x")
    assert "PRIVATE" not in repr(cfg)


def test_line_splitter_reassembles_split_frames_per_stream() -> None:
    s = LogLineSplitter(timestamps=True)
    ts = "2024-01-02T03:04:05.123456789Z"
    assert s.feed("stdout", f"{ts} hel".encode()) == []
    assert s.feed("stderr", f"{ts} boom\n".encode())[0].stream == "stderr"
    lines = s.feed("stdout", f"lo\r\n{ts} next".encode())
    # Docker's nanoseconds become the microseconds every source gives.
    assert [(ln.text, ln.ts) for ln in lines] == [("hello", "2024-01-02T03:04:05.123456Z")]
    (last,) = s.flush()
    assert (last.text, last.stream) == ("next", "stdout")
    assert s.flush() == []


def test_line_splitter_cuts_the_stamp_of_stamped_output_when_no_time_is_wanted() -> None:
    # The ssh source always reads with --timestamps; a read without them gets no ts and
    # no prefix. A line without a stamp is kept whole.
    s = LogLineSplitter(timestamps=False, stamped=True)
    lines = s.feed("stdout", b"2024-01-02T03:04:05.000000000Z a\nplain b\n")
    assert [(ln.text, ln.ts) for ln in lines] == [("a", None), ("plain b", None)]


def test_log_params() -> None:
    assert log_params(LogOptions(tail=None), follow=True)["tail"] == "all"
    p = log_params(LogOptions(tail=5, timestamps=True, since=7), follow=False)
    assert (p["tail"], p["timestamps"], p["since"], p["follow"]) == ("5", "1", "7", "0")


def test_summary_from_engine_list_row() -> None:
    row = {
        "Id": "a" * 64,
        "Names": ["/web"],
        "Image": "nginx:1",
        "State": "running",
        "Status": "Up 2 minutes",
        "Created": 1700000000,
        "Ports": [
            {"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp", "IP": "0.0.0.0"},
            {"PrivatePort": 53, "Type": "udp"},
        ],
        "Labels": {"a": "b"},
    }
    s = summary_from_engine_list(row, "docker:1")
    assert (s.name, s.state, s.created) == ("web", "running", "2023-11-14T22:13:20Z")
    assert s.status == "Up"  # Docker's phrase without the duration
    assert [(p.private, p.public, p.type) for p in s.ports] == [
        (53, None, "udp"),
        (80, 8080, "tcp"),
    ]
    assert s.labels == {"a": "b"} and s.host_id == "docker:1"


def _cert(days_from_now: int, issuer: str = "Test CA") -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now + dt.timedelta(days=days_from_now))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def test_client_cert_problem() -> None:
    good, _ = _cert(10)
    expired, _ = _cert(-1)
    other_ca, _ = _cert(10, issuer="Someone Else")
    assert client_cert_problem(good, good) is None
    assert "expired" in (client_cert_problem(expired, good) or "")
    assert "unknown CA" in (client_cert_problem(other_ca, good) or "")
    assert "no client certificate" in (client_cert_problem(None, good) or "")


def test_build_ssl_context_checks_material() -> None:
    cert, key = _cert(10)
    ctx = build_ssl_context(cert, cert, key)
    assert ctx.check_hostname and ctx.verify_mode.name == "CERT_REQUIRED"
    assert build_ssl_context(cert, None, None, verify=False).check_hostname is False
    _, other_key = _cert(10)
    with pytest.raises(ValueError, match="do not match"):
        build_ssl_context(cert, cert, other_key)
    with pytest.raises(ValueError, match="both"):
        build_ssl_context(cert, cert, None)
    with pytest.raises(ValueError, match="not valid PEM"):
        build_ssl_context("garbage", None, None)


def test_tls_material_errors_name_the_field_to_fix() -> None:
    cert, key = _cert(10)
    _, other_key = _cert(10)
    plain_key = serialization.load_pem_private_key(key.encode(), None)
    locked_key = plain_key.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret-passphrase"),
    ).decode()
    cases = [
        (("garbage", None, None), "tls.ca", "not valid PEM"),
        ((None, cert, None), "tls.key", "both"),
        ((None, None, key), "tls.cert", "both"),
        ((None, "garbage", key), "tls.cert", "not a valid PEM certificate"),
        ((None, cert, other_key), "tls.key", "do not match"),
        # Refused at once: OpenSSL would otherwise prompt on the server's terminal.
        ((None, cert, locked_key), "tls.key", "passphrase"),
    ]
    for (ca, client_cert, client_key), field, words in cases:
        with pytest.raises(TlsMaterialError, match=words) as caught:
            build_ssl_context(ca, client_cert, client_key)
        assert caught.value.field == field
