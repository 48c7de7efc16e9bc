"""How to reach a Kafka cluster and how syncline's topics are made there: one model.

The ``kafka:`` section of the configuration file *is* this model (``daemon/config.py`` adds
only what the file needs on top: the topic prefix, and secrets named by environment
variables), so every setting has one name, one default and one place that checks it. The
merge worker, the lanes and ``syncline check`` all read the same object.

Example::

    settings = KafkaSettings(bootstrap="127.0.0.1:19092",
                             topics=TopicSettings(partitions=8, replication_factor=3,
                                                  min_insync_replicas=2))
"""

from __future__ import annotations

from pathlib import Path
from ssl import SSLContext, SSLError
from typing import Any, Literal, Self

from aiokafka.helpers import create_ssl_context
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_core import PydanticCustomError

from streams.errors import StreamsError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

FOREVER = -1
"""``retention.ms`` of a topic whose records are never deleted."""

WEEK_MS = 7 * 24 * 3600 * 1000


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class SaslSettings(_Settings):
    """SASL credentials, used with the ``SASL_*`` security protocols."""

    mechanism: SaslMechanism = "PLAIN"
    """``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``."""
    username: str = Field(min_length=1, examples=['syncline'])
    """The SASL user."""
    password: SecretStr | None = None


class TlsSettings(_Settings):
    """TLS files, used with the ``SSL`` and ``SASL_SSL`` security protocols."""

    cafile: Path | None = Field(None, examples=['/etc/syncline/kafka-ca.pem'])
    """The CA bundle that signs the brokers' certificates."""
    certfile: Path | None = Field(None, examples=['/etc/syncline/client.pem'])
    """A client certificate (mutual TLS)."""
    keyfile: Path | None = Field(None, examples=['/etc/syncline/client.key'])
    """The client certificate's key."""
    key_password: SecretStr | None = None


class TopicSettings(_Settings):
    """How syncline's topics are created (``kafka.topics`` in the configuration file).

    Every topic gets ``partitions`` and ``replication_factor``: the stages rely on all their
    topics having the same partition count. ``min_insync_replicas`` (unset: the broker's
    default) is how many replicas must have a write before it is acknowledged (producers
    send with ``acks=all``); with ``replication_factor: 3``, 2 survives one broker down.
    ``retention_ms`` is the retention of the kept-forever topics (``observations``,
    ``resolutions``, ``merge``, ``conflicts``): ``-1`` keeps them forever, which replay and
    the review history need. The compacted topics keep the latest value per key regardless.
    """

    partitions: int = Field(default=4, ge=1)
    """Partitions of every topic (the same for all: a stage reads a key's partition of several
    topics); more spread the merge over more workers."""
    replication_factor: int = Field(default=1, ge=1)
    """Replicas of every partition (1 for a local broker, 3 in production)."""
    min_insync_replicas: int | None = Field(default=None, ge=1, examples=[2])
    """Replicas that must have a write before it counts (unset: the broker's default); at most
    replication_factor."""
    retention_ms: int = Field(default=FOREVER, ge=-1)
    """Retention of the kept-forever topics (observations, resolutions, merge, conflicts); -1
    keeps them forever, as replay needs."""
    dlq_retention_ms: int = Field(default=FOREVER, ge=-1)
    """Retention of the dead-letter topic (-1: forever)."""
    intents_retention_ms: int = Field(default=WEEK_MS, ge=-1)
    """Retention of the write intents (default a week)."""

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Self:
        if (self.min_insync_replicas is not None
                and self.min_insync_replicas > self.replication_factor):
            raise PydanticCustomError(
                "topic_settings",
                "min_insync_replicas ({insync}) must not exceed replication_factor "
                "({replicas}): no write could ever be acknowledged",
                {"insync": self.min_insync_replicas, "replicas": self.replication_factor})
        return self


class KafkaSettings(_Settings):
    """How to reach a Kafka cluster, and how syncline's topics are made there.

    The security fields are passed to aiokafka unchanged: ``sasl`` is used with the
    ``SASL_*`` protocols, ``ssl`` with ``SSL`` and ``SASL_SSL``. Secrets are ``SecretStr``.
    """

    bootstrap: str = Field(examples=['127.0.0.1:19092'])
    """The brokers: ``host:port[,host:port...]``."""
    client_id: str = Field(default="syncline", min_length=1)
    """The client id the brokers see."""
    security_protocol: SecurityProtocol = "PLAINTEXT"
    """``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``."""
    sasl: SaslSettings | None = None
    ssl: TlsSettings | None = None
    request_timeout: float = Field(default=30.0, gt=0)
    """Seconds a single request to the broker may take."""
    topics: TopicSettings = TopicSettings()
    """How syncline's topics are made (and what ``syncline check`` compares them with)."""

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments shared by aiokafka's producer, consumer and admin client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": int(self.request_timeout * 1000),
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = self._ssl_context()
        if self.security_protocol.startswith("SASL_") and self.sasl is not None:
            options["sasl_mechanism"] = self.sasl.mechanism
            options["sasl_plain_username"] = self.sasl.username
            if self.sasl.password is not None:
                options["sasl_plain_password"] = self.sasl.password.get_secret_value()
        return options

    def _ssl_context(self) -> SSLContext:
        tls = self.ssl or TlsSettings()
        password = tls.key_password.get_secret_value() if tls.key_password else None
        try:
            context: SSLContext = create_ssl_context(
                cafile=tls.cafile, certfile=tls.certfile, keyfile=tls.keyfile,
                password=password)
        except (OSError, SSLError) as exc:
            raise StreamsError(f"cannot load the TLS files for Kafka: {exc}") from exc
        return context
