"""shared/kafka_security.py: CONTACTS_KAFKA_* settings, refused when incomplete, and the client options they give:
accepted by aiokafka and FastStream, a TLS context that really verifies (and presents) certificates, OAUTHBEARER
tokens from a file or a real client-credentials endpoint on loopback."""

from __future__ import annotations

import asyncio
import base64
import datetime
import http.server
import json
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.codec import lz4_decode, lz4_encode, zstd_decode, zstd_encode
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faststream.kafka import KafkaBroker
from pydantic import SecretStr, ValidationError

from shared.kafka_security import (
    ClientCredentialsTokenProvider,
    FileTokenProvider,
    KafkaSecuritySettings,
    TokenUnavailable,
    client_options,
)

NOWHERE = "127.0.0.1:9"  # clients are only built here, never started


@pytest.fixture(autouse=True)
def _no_kafka_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CONTACTS_KAFKA_"):
            monkeypatch.delenv(name)


# --- certificates -------------------------------------------------------------------------------------------


@dataclass
class Pki:
    folder: Path
    ca: Path = field(init=False)
    server_cert: Path = field(init=False)
    server_key: Path = field(init=False)
    client_cert: Path = field(init=False)
    client_key: Path = field(init=False)
    other_ca: Path = field(init=False)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, *, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for ``localhost`` and a client certificate signed by it, and an unrelated CA."""
    pki = Pki(tmp_path_factory.mktemp("pki"))
    ca_key, other_key, server_key, client_key = _key(), _key(), _key(), _key()
    pki.ca = _write_cert(pki.folder / "ca.pem", _certificate("test ca", ca_key, issuer=None))
    pki.other_ca = _write_cert(pki.folder / "other-ca.pem", _certificate("other ca", other_key, issuer=None))
    pki.server_cert = _write_cert(
        pki.folder / "server.pem", _certificate("localhost", server_key, issuer=("test ca", ca_key), server=True))
    pki.server_key = _write_key(pki.folder / "server-key.pem", server_key)
    pki.client_cert = _write_cert(
        pki.folder / "client.pem", _certificate("kagibag-contacts", client_key, issuer=("test ca", ca_key)))
    pki.client_key = _write_key(pki.folder / "client-key.pem", client_key)
    return pki


async def _handshake(client: ssl.SSLContext, pki: Pki, *, require_client_cert: bool) -> str | None:
    """TLS handshake against a loopback server presenting ``pki``'s server certificate; returns the client
    certificate's common name the server saw (None if none). Raises ``ConnectionError`` when the server refused
    the client (with TLS 1.3 the client learns that only when it reads)."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    server_context.load_cert_chain(pki.server_cert, pki.server_key)
    server_context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE
    seen: list[str | None] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        seen.append(dict(item[0] for item in peer["subject"])["commonName"] if peer else None)
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="localhost")
        try:
            reply = await reader.read()
        except ssl.SSLError as error:
            raise ConnectionError(f"refused by the server: {error}") from error
        finally:
            writer.close()
        if reply != b"ok":
            raise ConnectionError(f"refused by the server (read {reply!r})")
    finally:
        server.close()
        await server.wait_closed()
    return seen[0]


# --- settings -----------------------------------------------------------------------------------------------


def test_defaults_are_plaintext_with_durable_idempotent_zstd_producers() -> None:
    settings = KafkaSecuritySettings()

    assert client_options(settings, service="identity", role="producer") == {
        "client_id": "kagibag-contacts-identity",
        "security_protocol": "PLAINTEXT",
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": "zstd",
    }
    assert client_options(settings, service="profiles", role="admin") == {
        "client_id": "kagibag-contacts-profiles", "security_protocol": "PLAINTEXT"}
    assert client_options(settings, service="profiles", role="consumer") == {
        "client_id": "kagibag-contacts-profiles", "security_protocol": "PLAINTEXT",
        "session_timeout_ms": 10_000, "heartbeat_interval_ms": 3000}


def test_a_heartbeat_above_a_third_of_the_session_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="HEARTBEAT_INTERVAL_MS must be at most a third"):
        KafkaSecuritySettings(session_timeout_ms=4000, heartbeat_interval_ms=2000)
    assert KafkaSecuritySettings(session_timeout_ms=4000, heartbeat_interval_ms=1000).session_timeout_ms == 4000


def test_settings_come_from_contacts_kafka_variables(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    for name, value in {
        "SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "SCRAM-SHA-512", "SASL_USERNAME": "contacts",
        "SASL_PASSWORD": "s3cret", "SSL_CA_FILE": str(pki.ca), "CLIENT_ID_PREFIX": "contacts-eu",
        "ENABLE_IDEMPOTENCE": "false", "ACKS": "1", "COMPRESSION_TYPE": "zstd",
        "BOOTSTRAP_SERVERS": "kafka-0:9093",  # PlatformSettings' variable, same prefix: not an error here
    }.items():
        monkeypatch.setenv(f"CONTACTS_KAFKA_{name}", value)

    settings = KafkaSecuritySettings()
    options = client_options(settings, service="ingest", role="producer")

    assert "s3cret" not in repr(settings)
    assert options["client_id"] == "contacts-eu-ingest"
    assert (options["security_protocol"], options["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("contacts", "s3cret")
    assert (options["acks"], options["enable_idempotence"], options["compression_type"]) == (1, False, "zstd")
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert options["ssl_context"].check_hostname


@pytest.mark.parametrize(
    ("variables", "complaint"),
    [
        ({"SECURITY_PROTOCOL": "SASL_SSL"}, "CONTACTS_KAFKA_SASL_MECHANISM is required"),
        ({"SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SASL_MECHANISM": "SCRAM-SHA-256", "SASL_USERNAME": "u"},
         "CONTACTS_KAFKA_SASL_PASSWORD is required"),
        ({"SASL_MECHANISM": "PLAIN", "SASL_USERNAME": "u", "SASL_PASSWORD": "p"},
         "CONTACTS_KAFKA_SASL_MECHANISM is set but CONTACTS_KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
        ({"SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SASL_MECHANISM": "OAUTHBEARER"},
         "OAUTHBEARER needs exactly one of"),
        ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "OAUTHBEARER",
          "OAUTH_TOKEN_URL": "https://idp.example/token", "OAUTH_CLIENT_ID": "contacts"},
         "needs CONTACTS_KAFKA_OAUTH_CLIENT_ID and _OAUTH_CLIENT_SECRET"),
        ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "PLAIN", "SASL_USERNAME": "u", "SASL_PASSWORD": "p",
          "OAUTH_TOKEN_URL": "https://idp.example/token"}, "CONTACTS_KAFKA_OAUTH_TOKEN_URL is only for OAUTHBEARER"),
        ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "GSSAPI"}, "sasl_mechanism"),
        ({"SECURITY_PROTOCOL": "TLS"}, "security_protocol"),
        ({"ACKS": "1"}, "idempotent producers need CONTACTS_KAFKA_ACKS=all"),
        ({"COMPRESSION_TYPE": "brotli"}, "compression_type"),
        ({"CLIENT_ID_PREFIX": "has spaces"}, "client_id_prefix"),
        ({"SECURITY_PROTOCOL": "SSL", "SSL_CA_FILE": "/nonexistent/ca.pem"}, "ssl_ca_file"),
    ],
)
def test_incomplete_or_contradictory_settings_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], complaint: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(f"CONTACTS_KAFKA_{name}", value)

    with pytest.raises(ValidationError) as raised:
        KafkaSecuritySettings()

    assert complaint in str(raised.value)


def test_tls_files_without_tls_and_a_certificate_without_its_key_are_refused(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="CONTACTS_KAFKA_SSL_CA_FILE is set but .* is SASL_PLAINTEXT"):
        KafkaSecuritySettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u",
                              sasl_password=SecretStr("p"), ssl_ca_file=pki.ca)
    with pytest.raises(ValidationError, match="SSL_CERT_FILE and CONTACTS_KAFKA_SSL_KEY_FILE go together"):
        KafkaSecuritySettings(security_protocol="SSL", ssl_cert_file=pki.client_cert)


# --- the options in the clients -------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_aiokafka_clients_accept_the_options(mechanism: str, pki: Pki) -> None:
    settings = KafkaSecuritySettings(security_protocol="SASL_SSL", sasl_mechanism=mechanism, sasl_username="u",
                                     sasl_password=SecretStr("p"), ssl_ca_file=pki.ca, compression_type="lz4")

    producer = AIOKafkaProducer(bootstrap_servers=NOWHERE, **client_options(settings, service="s", role="producer"))
    consumer = AIOKafkaConsumer(bootstrap_servers=NOWHERE, **client_options(settings, service="s", role="consumer"))
    admin = AIOKafkaAdminClient(bootstrap_servers=NOWHERE, **client_options(settings, service="s", role="admin"))

    for client in (producer.client, consumer._client, admin._client):
        assert (client._security_protocol, client._sasl_mechanism) == ("SASL_SSL", mechanism)
        assert client._sasl_plain_username == "u"
        assert client._ssl_context is client_options(settings, service="s", role="admin")["ssl_context"]
    assert producer._compression_type == "lz4"
    await consumer.stop()
    await producer.stop()
    await admin.close()


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [("SSL", None), ("SASL_SSL", "SCRAM-SHA-512"), ("SASL_PLAINTEXT", "PLAIN"), ("SASL_SSL", "OAUTHBEARER")],
)
def test_the_faststream_broker_connects_its_clients_with_the_same_settings(
    protocol: str, mechanism: str | None, pki: Pki, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("t0k3n\n")
    password = mechanism not in (None, "OAUTHBEARER")
    settings = KafkaSecuritySettings(
        security_protocol=protocol, sasl_mechanism=mechanism, ssl_ca_file=pki.ca if "SSL" in protocol else None,
        oauth_token_file=token if mechanism == "OAUTHBEARER" else None,
        sasl_username="u" if password else None, sasl_password=SecretStr("p") if password else None,
    )

    broker = KafkaBroker(NOWHERE, **client_options(settings, service="identity", role="broker"))
    direct = client_options(settings, service="identity", role="producer")
    connection = broker._connection_kwargs

    for key, value in direct.items():
        assert connection[key] == value, key


def test_idempotent_producers_and_compression_reach_aiokafka() -> None:
    async def build() -> AIOKafkaProducer:
        settings = KafkaSecuritySettings(compression_type="zstd")
        return AIOKafkaProducer(bootstrap_servers=NOWHERE, **client_options(settings, service="s", role="producer"))

    producer = asyncio.run(build())

    assert producer._txn_manager is not None  # aiokafka keeps a transaction manager only for idempotent producers
    assert producer._compression_type == "zstd"


@pytest.mark.parametrize(("encode", "decode"), [(lz4_encode, lz4_decode), (zstd_encode, zstd_decode)])
def test_lz4_and_zstd_codecs_are_installed(encode: object, decode: object) -> None:
    payload = b'{"email": "ada@example.com"}' * 100
    assert callable(encode) and callable(decode)
    compressed = encode(payload)
    assert len(compressed) < len(payload)
    assert decode(compressed) == payload


# --- TLS ------------------------------------------------------------------------------------------------------


async def test_the_ssl_context_trusts_the_configured_ca_and_presents_the_client_certificate(pki: Pki) -> None:
    mutual = KafkaSecuritySettings(security_protocol="SSL", ssl_ca_file=pki.ca, ssl_cert_file=pki.client_cert,
                                   ssl_key_file=pki.client_key)
    context = client_options(mutual, service="s", role="consumer")["ssl_context"]

    assert await _handshake(context, pki, require_client_cert=True) == "kagibag-contacts"


async def test_a_server_signed_by_another_ca_is_refused(pki: Pki) -> None:
    settings = KafkaSecuritySettings(security_protocol="SSL", ssl_ca_file=pki.other_ca)

    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(client_options(settings, service="s", role="consumer")["ssl_context"], pki,
                         require_client_cert=False)


async def test_without_a_client_certificate_mutual_tls_fails(pki: Pki) -> None:
    settings = KafkaSecuritySettings(security_protocol="SSL", ssl_ca_file=pki.ca)

    with pytest.raises(ConnectionError, match="refused by the server"):
        await _handshake(client_options(settings, service="s", role="consumer")["ssl_context"], pki,
                         require_client_cert=True)


# --- OAUTHBEARER ----------------------------------------------------------------------------------------------


async def test_the_token_file_is_read_at_every_connection(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    settings = KafkaSecuritySettings(security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER",
                                     oauth_token_file=path)
    provider = client_options(settings, service="s", role="consumer")["sasl_oauth_token_provider"]

    assert isinstance(provider, FileTokenProvider)
    assert await provider.token() == "first"
    path.write_text("rotated")
    assert await provider.token() == "rotated"
    path.write_text("  \n")
    with pytest.raises(TokenUnavailable, match="is empty"):
        await provider.token()
    path.unlink()
    with pytest.raises(TokenUnavailable, match="cannot read"):
        await provider.token()


@dataclass
class TokenEndpoint:
    """A real OAuth token endpoint on loopback: client-credentials grant, HTTP Basic client authentication."""

    url: str
    requests: list[dict[str, str]]
    expires_in: list[int]


@pytest.fixture
def token_endpoint() -> Iterator[TokenEndpoint]:
    requests: list[dict[str, str]] = []
    expires_in = [3600]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            form = dict(urllib.parse.parse_qsl(body))
            requests.append(form)
            expected = "Basic " + base64.b64encode(b"contacts:client-s3cret").decode()
            if self.headers.get("Authorization") != expected or form.get("grant_type") != "client_credentials":
                self._answer(401, {"error": "invalid_client"})
            else:
                self._answer(200, {"access_token": f"token-{len(requests)}", "token_type": "Bearer",
                                   "expires_in": expires_in[0]})

        def _answer(self, status: int, payload: dict[str, object]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TokenEndpoint(f"http://127.0.0.1:{server.server_address[1]}/token", requests, expires_in)
    finally:
        server.shutdown()
        server.server_close()


async def test_client_credentials_tokens_are_fetched_once_and_reused_until_near_expiry(
    token_endpoint: TokenEndpoint,
) -> None:
    settings = KafkaSecuritySettings(
        security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER", oauth_token_url=token_endpoint.url,
        oauth_client_id="contacts", oauth_client_secret=SecretStr("client-s3cret"), oauth_scope="kafka",
    )
    provider = client_options(settings, service="s", role="producer")["sasl_oauth_token_provider"]

    assert isinstance(provider, ClientCredentialsTokenProvider)
    assert provider is client_options(settings, service="t", role="consumer")["sasl_oauth_token_provider"]
    assert [await provider.token() for _ in range(3)] == ["token-1"] * 3
    assert token_endpoint.requests == [{"grant_type": "client_credentials", "scope": "kafka"}]

    token_endpoint.expires_in[0] = 30  # shorter than the refresh margin: asked again at every connection
    short_lived = ClientCredentialsTokenProvider(url=token_endpoint.url, client_id="contacts",
                                                 client_secret=SecretStr("client-s3cret"))
    assert [await short_lived.token(), await short_lived.token()] == ["token-2", "token-3"]


async def test_a_refused_or_unreachable_token_endpoint_says_so(token_endpoint: TokenEndpoint) -> None:
    wrong_secret = ClientCredentialsTokenProvider(url=token_endpoint.url, client_id="contacts",
                                                  client_secret=SecretStr("wrong"))
    with pytest.raises(TokenUnavailable, match="answered 401"):
        await wrong_secret.token()

    closed = ClientCredentialsTokenProvider(url="http://127.0.0.1:9/token", client_id="contacts",
                                            client_secret=SecretStr("client-s3cret"), timeout_seconds=2)
    with pytest.raises(TokenUnavailable, match="unreachable"):
        await closed.token()
