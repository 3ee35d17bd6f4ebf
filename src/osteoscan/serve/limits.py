"""What the service refuses, and how: size, type by content, admission, access token.

Every refusal is an :class:`ApiError` that becomes a JSON ``{"detail": message}`` with a 4xx
status (503 when busy). Uploads are held in memory only: the multipart parser never spools
a part to a temporary file, because the body is capped before it is parsed.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

UPLOAD_FIELD = "files"
# (name, offset, signature): what a supported file starts with
MAGIC = (
    ("PNG", 0, b"\x89PNG\r\n\x1a\n"),
    ("JPEG", 0, b"\xff\xd8\xff"),
    ("TIFF", 0, b"II*\x00"),
    ("TIFF", 0, b"MM\x00*"),
    ("BMP", 0, b"BM"),
    ("DICOM", 128, b"DICM"),
)
SUPPORTED_TYPES = ", ".join(dict.fromkeys(name for name, _, _ in MAGIC))
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers on top of the files themselves


class ApiError(Exception):
    """A refused request: its HTTP status, a message saying what to do, optional headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return JSONResponse({"detail": self.message}, self.status, headers=self.headers)


def sniff_type(data: bytes) -> str | None:
    """The image type ``data`` starts with (PNG, JPEG, TIFF, BMP, DICOM), or None."""
    for name, offset, signature in MAGIC:
        if data[offset : offset + len(signature)] == signature:
            return name
    return None


class Admission:
    """At most ``capacity`` requests inside at once; the next is refused with 503 at once.

    Used only from the event loop, so a plain counter is enough.
    """

    def __init__(self, capacity: int, retry_after_s: int) -> None:
        self.capacity, self.retry_after_s = capacity, retry_after_s
        self.inside = 0

    def __enter__(self) -> Admission:
        if self.inside >= self.capacity:
            raise ApiError(
                503,
                f"the service is busy ({self.capacity} requests in progress); retry in "
                f"{self.retry_after_s} s",
                {"Retry-After": str(self.retry_after_s)},
            )
        self.inside += 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.inside -= 1


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"upload larger than the limit of {limit / 2**20:.0f} MB; send smaller or fewer files "
        "(the limit is --max-upload-mb)",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit - MULTIPART_OVERHEAD)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit - MULTIPART_OVERHEAD)
    return bytes(body)


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def parse_uploads(
    request: Request, max_upload_bytes: int, max_files: int
) -> list[UploadFile]:
    """The files of the multipart field ``files``, in memory, or an ApiError saying what is wrong."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(
            415,
            f"expected multipart/form-data with the images in the field '{UPLOAD_FIELD}', got "
            f"{content_type or 'no Content-Type'}",
        )
    limit = max_upload_bytes + MULTIPART_OVERHEAD
    body = await read_body(request, limit)
    parser = MultiPartParser(request.headers, _once(body), max_files=max_files, max_fields=16)
    parser.spool_max_size = limit + 1  # the body is capped: every part stays in memory
    try:
        form: FormData = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, f"malformed multipart body ({exc.message})") from None
    uploads = [v for k, v in form.multi_items() if k == UPLOAD_FIELD and isinstance(v, UploadFile)]
    if not uploads:
        others = sorted({k for k, _ in form.multi_items()})
        got = f"; got field(s) {', '.join(map(repr, others))}" if others else ""
        raise ApiError(
            400, f"no file: send one or more images in the multipart field '{UPLOAD_FIELD}'{got}"
        )
    return uploads


@dataclass(frozen=True)
class TokenGuard:
    """ASGI middleware: every path but the open ones needs ``Authorization: Bearer TOKEN``."""

    app: ASGIApp
    token: str
    open_paths: frozenset[str]
    open_prefixes: tuple[str, ...] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or path in self.open_paths
            or path.startswith(self.open_prefixes)
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        scheme, _, given = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.encode(), self.token.encode()
        ):
            response = ApiError(
                401,
                "missing or wrong access token: send 'Authorization: Bearer TOKEN' (the token "
                "the service was started with)",
                {"WWW-Authenticate": "Bearer"},
            ).response()
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
