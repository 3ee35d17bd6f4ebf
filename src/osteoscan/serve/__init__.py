"""The web service: a browser page and a REST API over one bundle (``osteoscan serve``).

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart). Importing this package imports
no torch; the bundle's backend decides what is loaded.
"""

from osteoscan.serve.config import ServeConfig, read_token

__all__ = ["ServeConfig", "create_app", "read_token", "run"]


def __getattr__(name: str):
    if name in ("create_app", "run"):
        from osteoscan.serve import app

        return getattr(app, name)
    raise AttributeError(name)
