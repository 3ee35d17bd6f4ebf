"""The ``serve`` command: parse, build a ServeConfig, hand it to the library. FastAPI, uvicorn and
the model are imported only when the command runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from osteoscan.inference.backends import BACKENDS
from osteoscan.serve.config import MB, TOKEN_ENV, ServeConfig, read_token

_DEFAULTS = ServeConfig()


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from osteoscan.serve.app import run
    except ImportError as exc:
        from osteoscan.errors import BadConfigError

        raise BadConfigError(
            f"serve needs the web extra ({exc.name} is missing): pip install 'osteoscan[serve]'"
        ) from None
    config = ServeConfig(
        host=args.host,
        port=args.port,
        backend=args.backend,
        threads=args.threads,
        token=read_token(args.token_file),
        max_upload_bytes=int(args.max_upload_mb * MB),
        max_pixels=args.max_pixels,
        max_files=args.max_files,
        max_batch=args.max_batch,
        batch_window_ms=args.batch_window_ms,
        max_pending=args.max_pending,
        explain=not args.no_explain,
    )
    run(args.bundle, config)
    return 0


def add_serve_commands(sub: argparse._SubParsersAction) -> None:
    d = _DEFAULTS
    p = sub.add_parser(
        "serve",
        help="web page and REST API for a bundle (a screening aid, not a diagnosis)",
        description="Serve a bundle: the page at http://HOST:PORT/, the REST API under /api/v1, "
        "the OpenAPI document at /openapi.json. Beyond loopback an access token is required.",
    )
    p.add_argument("bundle", type=Path, help="the bundle folder")
    p.add_argument("--host", default=d.host, help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=d.port, help="default: %(default)s")
    p.add_argument("--backend", choices=BACKENDS, default=d.backend, help="default: %(default)s")
    p.add_argument("--threads", type=int, default=d.threads, help="CPU threads for the model")
    p.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help=f"file holding the bearer token (else ${TOKEN_ENV}); required beyond loopback",
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=d.max_upload_bytes / MB,
        help="largest request body, MB (default: %(default)g)",
    )
    p.add_argument(
        "--max-pixels", type=int, default=d.max_pixels, help="largest image (default: %(default)s)"
    )
    p.add_argument(
        "--max-files",
        type=int,
        default=d.max_files,
        help="files per request (default: %(default)s)",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=d.max_batch,
        help="images per model call (default: %(default)s)",
    )
    p.add_argument(
        "--batch-window-ms",
        type=float,
        default=d.batch_window_ms,
        help="how long a batch waits for more images (default: %(default)s)",
    )
    p.add_argument(
        "--max-pending",
        type=int,
        default=d.max_pending,
        help="requests in progress at once; more get 503 + Retry-After (default: %(default)s)",
    )
    p.add_argument("--no-explain", action="store_true", help="do not load Grad-CAM")
    p.set_defaults(func=cmd_serve)
