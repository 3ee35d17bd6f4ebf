"""The service's settings: one frozen dataclass, the CLI's source of defaults."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from osteoscan.data.decode import DEFAULT_MAX_PIXELS
from osteoscan.errors import BadConfigError
from osteoscan.inference.backends import BACKENDS, DEFAULT_BACKEND
from osteoscan.inference.predict import DEFAULT_BATCH_SIZE

TOKEN_ENV = "OSTEOSCAN_TOKEN"
MIN_TOKEN_LENGTH = 16
MB = 1024 * 1024


def is_loopback(host: str) -> bool:
    """True for 'localhost' and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    """How ``osteoscan serve`` listens, what it accepts and how it batches.

    Beyond loopback a bearer ``token`` is required (the service refuses to start without one).
    ``max_pending`` requests are admitted at once (reading, decoding, queued or in the model);
    one more is answered 503 with ``Retry-After: retry_after_s``, so memory stays bounded at
    about ``max_pending * max_upload_bytes`` of request bodies, the images being decoded
    (``decode_workers`` at a time) and, for ``explain`` requests, their decoded images. Concurrent images are run through the model together: up to ``max_batch``, waiting
    at most ``batch_window_ms`` for company.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    backend: str = DEFAULT_BACKEND
    threads: int | None = None
    token: str | None = field(default=None, repr=False)
    max_upload_bytes: int = 50 * MB
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_files: int = 16
    max_batch: int = DEFAULT_BATCH_SIZE
    batch_window_ms: float = 10.0
    max_pending: int = 32
    decode_workers: int = 2
    retry_after_s: int = 2
    explain: bool = True
    display_max_side: int = 1024

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise BadConfigError(
                f"unknown backend {self.backend!r}; use one of {', '.join(BACKENDS)}"
            )
        if not 0 <= self.port <= 65535:
            raise BadConfigError(f"--port {self.port}: use a port number from 0 to 65535")
        for name in ("max_upload_bytes", "max_pixels", "max_files", "max_batch", "max_pending"):
            if getattr(self, name) < 1:
                raise BadConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.decode_workers < 1 or self.retry_after_s < 1 or self.display_max_side < 32:
            raise BadConfigError(
                "decode_workers and retry_after_s must be at least 1, display_max_side at least 32"
            )
        if self.batch_window_ms < 0:
            raise BadConfigError(f"batch_window_ms must be >= 0, got {self.batch_window_ms}")
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise BadConfigError(
                f"the access token has {len(self.token)} characters; use at least "
                f"{MIN_TOKEN_LENGTH} (e.g. python -c 'import secrets; print(secrets.token_urlsafe())')"
            )
        if self.token is None and not is_loopback(self.host):
            raise BadConfigError(
                f"--host {self.host} listens beyond this computer: an access token is required; "
                f"pass --token-file FILE or set {TOKEN_ENV}, or listen on 127.0.0.1"
            )


def read_token(token_file: Path | str | None = None) -> str | None:
    """The bearer token: the first line of ``token_file`` when given, else ``$OSTEOSCAN_TOKEN``,
    else None."""
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BadConfigError(
                f"--token-file {token_file}: cannot read it ({exc.strerror or exc})"
            ) from None
        if not token:
            raise BadConfigError(
                f"--token-file {token_file}: the file is empty; put the token in it"
            )
        return token
    return os.environ.get(TOKEN_ENV, "").strip() or None
