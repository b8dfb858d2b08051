"""Connecting to a real Kafka cluster: TLS, SASL (PLAIN, SCRAM, OAUTHBEARER), client ids, producer durability and
compression, read from ``CONTACTS_KAFKA_*``; ``client_options`` turns them into the keyword arguments of aiokafka's
producer, consumer and admin client, and of FastStream's ``KafkaBroker``."""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from pathlib import Path
from typing import Any, Literal

import httpx
from aiokafka import codec
from aiokafka.abc import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context
from faststream.security import (
    BaseSecurity,
    SASLOAuthBearer,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)
from pydantic import Field, FilePath, HttpUrl, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
Compression = Literal["none", "gzip", "lz4", "zstd"]
ClientRole = Literal["producer", "consumer", "admin", "broker"]

_CODEC_AVAILABLE = {"none": lambda: True, "gzip": codec.has_gzip, "lz4": codec.has_lz4, "zstd": codec.has_zstd}


class KafkaSecuritySettings(BaseSettings):
    """How every client of a service connects (env prefix ``CONTACTS_KAFKA_``; the broker list itself is
    ``CONTACTS_KAFKA_BOOTSTRAP_SERVERS`` in ``PlatformSettings``). Checked when loaded, so a service with an
    incomplete or contradictory setup refuses to start and says which variable is wrong.

    CONTACTS_KAFKA_SECURITY_PROTOCOL    PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL
    CONTACTS_KAFKA_SASL_MECHANISM       with SASL_*: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER
    CONTACTS_KAFKA_SASL_USERNAME        PLAIN and SCRAM: the user
    CONTACTS_KAFKA_SASL_PASSWORD        PLAIN and SCRAM: its password
    CONTACTS_KAFKA_SSL_CA_FILE          with SSL/SASL_SSL: PEM file of the CAs to trust (default: the system's)
    CONTACTS_KAFKA_SSL_CERT_FILE        client certificate (PEM) for mutual TLS, with _SSL_KEY_FILE
    CONTACTS_KAFKA_SSL_KEY_FILE         its private key (PEM); _SSL_KEY_PASSWORD if the key is encrypted
    CONTACTS_KAFKA_SSL_CHECK_HOSTNAME   check the broker's name against its certificate (default true)
    CONTACTS_KAFKA_OAUTH_TOKEN_FILE     OAUTHBEARER: a file holding the token, read at every (re)connection,
                                        so a rotated file (a projected service-account token) is picked up
    CONTACTS_KAFKA_OAUTH_TOKEN_URL      OAUTHBEARER: else a token endpoint, asked with the client-credentials
                                        grant (_OAUTH_CLIENT_ID, _OAUTH_CLIENT_SECRET, optional _OAUTH_SCOPE);
                                        the token is reused until a minute before it expires
    CONTACTS_KAFKA_CLIENT_ID_PREFIX     client ids are ``<prefix>-<service>`` (default ``kagibag-contacts``)
    CONTACTS_KAFKA_ENABLE_IDEMPOTENCE   idempotent producers (default true; needs acks=all; ``make run`` sets it
                                        false because the embedded Tansu broker refuses idempotent producers)
    CONTACTS_KAFKA_ACKS                 all (default), 1 or 0
    CONTACTS_KAFKA_COMPRESSION_TYPE     zstd (default), none, gzip or lz4: the local broker's CPU per record
                                        halved and its memory cut by four fifths; zstd (level 3) costs a
                                        tenth of aiokafka's lz4 (level 9) to compress (README, Performance)
    CONTACTS_KAFKA_SESSION_TIMEOUT_MS   consumer groups: a member silent this long is replaced (default 10000,
                                        aiokafka's); the local broker (Tansu) holds every join for half of it,
                                        so ``make run`` and the tests set 3000 (a join in 1.5 s instead of 5)
    CONTACTS_KAFKA_HEARTBEAT_INTERVAL_MS  consumer groups: how often a member says it is alive (default 3000;
                                        below a third of the session timeout)
    """

    model_config = SettingsConfigDict(env_prefix="CONTACTS_KAFKA_", extra="forbid", frozen=True)

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_file: FilePath | None = None
    ssl_cert_file: FilePath | None = None
    ssl_key_file: FilePath | None = None
    ssl_key_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    oauth_token_file: FilePath | None = None
    oauth_token_url: HttpUrl | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: SecretStr | None = None
    oauth_scope: str | None = None
    client_id_prefix: str = Field(default="kagibag-contacts", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    enable_idempotence: bool = True
    acks: Literal["all", "1", "0"] = "all"
    compression_type: Compression = "zstd"
    session_timeout_ms: int = Field(default=10_000, ge=1000, le=300_000)
    heartbeat_interval_ms: int = Field(default=3000, ge=100)

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecuritySettings:
        problems = [*self._sasl_problems(), *self._tls_problems(), *self._producer_problems()]
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            problems.append("CONTACTS_KAFKA_HEARTBEAT_INTERVAL_MS must be at most a third of "
                            "CONTACTS_KAFKA_SESSION_TIMEOUT_MS")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _sasl_problems(self) -> list[str]:
        oauth = {"OAUTH_TOKEN_FILE": self.oauth_token_file, "OAUTH_TOKEN_URL": self.oauth_token_url}
        given = {"SASL_MECHANISM": self.sasl_mechanism, "SASL_USERNAME": self.sasl_username,
                 "SASL_PASSWORD": self.sasl_password, **oauth}
        if not self.uses_sasl:
            stray = [name for name, value in given.items() if value is not None]
            return [f"CONTACTS_KAFKA_{name} is set but CONTACTS_KAFKA_SECURITY_PROTOCOL is {self.security_protocol} "
                    "(SASL needs SASL_PLAINTEXT or SASL_SSL)" for name in stray]
        if self.sasl_mechanism is None:
            return [f"CONTACTS_KAFKA_SASL_MECHANISM is required with {self.security_protocol}"]
        if self.sasl_mechanism != "OAUTHBEARER":
            missing = [name for name in ("SASL_USERNAME", "SASL_PASSWORD") if given[name] is None]
            return [f"CONTACTS_KAFKA_{name} is required with {self.sasl_mechanism}" for name in missing] + [
                f"CONTACTS_KAFKA_{name} is only for OAUTHBEARER" for name, value in oauth.items() if value is not None
            ]
        if (self.oauth_token_file is None) == (self.oauth_token_url is None):
            return ["OAUTHBEARER needs exactly one of CONTACTS_KAFKA_OAUTH_TOKEN_FILE and "
                    "CONTACTS_KAFKA_OAUTH_TOKEN_URL"]
        if self.oauth_token_url is not None and (self.oauth_client_id is None or self.oauth_client_secret is None):
            return ["CONTACTS_KAFKA_OAUTH_TOKEN_URL needs CONTACTS_KAFKA_OAUTH_CLIENT_ID and _OAUTH_CLIENT_SECRET"]
        return []

    def _tls_problems(self) -> list[str]:
        files = {"SSL_CA_FILE": self.ssl_ca_file, "SSL_CERT_FILE": self.ssl_cert_file,
                 "SSL_KEY_FILE": self.ssl_key_file, "SSL_KEY_PASSWORD": self.ssl_key_password}
        if not self.uses_tls:
            return [f"CONTACTS_KAFKA_{name} is set but CONTACTS_KAFKA_SECURITY_PROTOCOL is {self.security_protocol} "
                    "(TLS needs SSL or SASL_SSL)" for name, value in files.items() if value is not None]
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            return ["CONTACTS_KAFKA_SSL_CERT_FILE and CONTACTS_KAFKA_SSL_KEY_FILE go together (mutual TLS)"]
        return []

    def _producer_problems(self) -> list[str]:
        problems = []
        if self.enable_idempotence and self.acks != "all":
            problems.append("idempotent producers need CONTACTS_KAFKA_ACKS=all "
                            "(or set CONTACTS_KAFKA_ENABLE_IDEMPOTENCE=false)")
        if not _CODEC_AVAILABLE[self.compression_type]():
            problems.append(f"CONTACTS_KAFKA_COMPRESSION_TYPE={self.compression_type} needs the cramjam package "
                            "(aiokafka[lz4,zstd])")
        return problems


def client_options(settings: KafkaSecuritySettings, *, service: str, role: ClientRole) -> dict[str, Any]:
    """Keyword arguments, next to ``bootstrap_servers``, for one of a service's Kafka clients:

    - ``"producer"``: ``AIOKafkaProducer`` (connection, client id, acks, idempotence, compression)
    - ``"consumer"``: ``AIOKafkaConsumer`` (also the group timing); ``"admin"``: ``AIOKafkaAdminClient``
      (connection and client id)
    - ``"broker"``: FastStream's ``KafkaBroker``, which takes TLS and SASL as a ``security`` object and builds its
      own consumers and producer from it (so: ``security``, client id, token provider and the producer options).

    The SSL context and the OAUTHBEARER token provider are built once per settings and shared by all clients."""
    options: dict[str, Any] = {"client_id": f"{settings.client_id_prefix}-{service}"}
    producer = {
        "acks": "all" if settings.acks == "all" else int(settings.acks),
        "enable_idempotence": settings.enable_idempotence,
        "compression_type": None if settings.compression_type == "none" else settings.compression_type,
    }
    if role == "broker":
        options["security"] = _faststream_security(settings)
        if settings.sasl_mechanism == "OAUTHBEARER":
            options["sasl_oauth_token_provider"] = _token_provider(settings)
        return options | producer
    options["security_protocol"] = settings.security_protocol
    if settings.uses_tls:
        options["ssl_context"] = _ssl_context(settings)
    if settings.uses_sasl:
        options["sasl_mechanism"] = settings.sasl_mechanism
        if settings.sasl_mechanism == "OAUTHBEARER":
            options["sasl_oauth_token_provider"] = _token_provider(settings)
        else:
            options["sasl_plain_username"] = settings.sasl_username
            options["sasl_plain_password"] = _secret(settings.sasl_password)
    if role == "producer":
        options |= producer
    if role == "consumer":
        options |= {"session_timeout_ms": settings.session_timeout_ms,
                    "heartbeat_interval_ms": settings.heartbeat_interval_ms}
    return options


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


@functools.lru_cache(maxsize=16)
def _ssl_context(settings: KafkaSecuritySettings) -> ssl.SSLContext:
    context: ssl.SSLContext = create_ssl_context(  # aiokafka's helper is untyped
        cafile=settings.ssl_ca_file,
        certfile=settings.ssl_cert_file,
        keyfile=settings.ssl_key_file,
        password=_secret(settings.ssl_key_password),
    )
    context.check_hostname = settings.ssl_check_hostname
    return context


@functools.lru_cache(maxsize=16)
def _token_provider(settings: KafkaSecuritySettings) -> AbstractTokenProvider:
    if settings.oauth_token_file is not None:
        return FileTokenProvider(settings.oauth_token_file)
    assert settings.oauth_token_url is not None and settings.oauth_client_id is not None  # checked by the settings
    assert settings.oauth_client_secret is not None
    return ClientCredentialsTokenProvider(
        url=str(settings.oauth_token_url),
        client_id=settings.oauth_client_id,
        client_secret=settings.oauth_client_secret,
        scope=settings.oauth_scope,
    )


def _faststream_security(settings: KafkaSecuritySettings) -> BaseSecurity | None:
    if settings.security_protocol == "PLAINTEXT":
        return None
    context = _ssl_context(settings) if settings.uses_tls else None
    if not settings.uses_sasl:
        return BaseSecurity(ssl_context=context, use_ssl=True)
    if settings.sasl_mechanism == "OAUTHBEARER":
        return SASLOAuthBearer(ssl_context=context, use_ssl=settings.uses_tls)
    sasl = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    return sasl[str(settings.sasl_mechanism)](
        username=str(settings.sasl_username),
        password=str(_secret(settings.sasl_password)),
        ssl_context=context,
        use_ssl=settings.uses_tls,
    )


class TokenUnavailable(RuntimeError):
    """No OAUTHBEARER token could be had; the message says from where and why."""


class FileTokenProvider(AbstractTokenProvider):
    """The token is the content of a file, read at every connection (aiokafka asks at each SASL handshake), so a
    token rotated in place, like a Kubernetes projected service-account token, is used from the next one on."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def token(self) -> str:
        try:
            text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
        except OSError as error:
            raise TokenUnavailable(f"cannot read the OAUTHBEARER token file {self.path}: {error}") from error
        if not text.strip():
            raise TokenUnavailable(f"the OAUTHBEARER token file {self.path} is empty")
        return text.strip()


class ClientCredentialsTokenProvider(AbstractTokenProvider):
    """OAuth 2.0 client-credentials grant (RFC 6749 section 4.4): the client id and secret go to the token
    endpoint by HTTP Basic authentication; the access token is reused until ``refresh_margin_seconds`` before its
    ``expires_in`` runs out (a token without ``expires_in`` is asked for again at every connection)."""

    def __init__(
        self,
        *,
        url: str,
        client_id: str,
        client_secret: SecretStr,
        scope: str | None = None,
        refresh_margin_seconds: float = 60.0,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.url = url
        self._auth = (client_id, client_secret)
        self._scope = scope
        self._margin = refresh_margin_seconds
        self._timeout = timeout_seconds
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at - self._margin:
                self._token, lifetime = await self._request()
                self._expires_at = time.monotonic() + lifetime
            return self._token

    async def _request(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"} | ({"scope": self._scope} if self._scope else {})
        client_id, secret = self._auth
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                response = await http.post(self.url, data=form, auth=(client_id, secret.get_secret_value()))
        except httpx.HTTPError as error:
            raise TokenUnavailable(f"token endpoint {self.url} unreachable: {error!r}") from error
        if response.status_code != 200:
            raise TokenUnavailable(f"token endpoint {self.url} answered {response.status_code}: {response.text[:200]}")
        try:
            payload = response.json()
            token = payload["access_token"]
            lifetime = float(payload.get("expires_in", 0))
        except (ValueError, KeyError, TypeError) as error:
            raise TokenUnavailable(f"token endpoint {self.url} gave no access_token: {response.text[:200]}") from error
        if not isinstance(token, str) or not token:
            raise TokenUnavailable(f"token endpoint {self.url} gave an empty access_token")
        return token, lifetime
