"""The FastAPI application: the page, ``POST /api/v1/predict``, ``GET /api/v1/model``, ``/healthz``.

A thin skin over :class:`~osteoscan.inference.predict.Predictor` (one preprocessing path, the
bundle's backend and threshold) and :class:`~osteoscan.explain.gradcam.Explainer`. The model is
loaded once; decoding runs in worker threads and inference in the micro-batcher's thread, so the
event loop only moves bytes. Any bad request gets a 4xx JSON ``{"detail": ...}``; nothing is
written to disk.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import asynccontextmanager
from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from osteoscan.errors import BadImageError, OsteoscanError
from osteoscan.htmlpage import SCREENING_NOTICE
from osteoscan.inference.predict import decide, open_predictor
from osteoscan.inference.preprocess import PreparedImage, Preprocessor
from osteoscan.roi import SUMMARY_RULE, Crop, most_abnormal
from osteoscan.serve.batching import MicroBatcher
from osteoscan.serve.config import ServeConfig
from osteoscan.serve.limits import (
    SUPPORTED_TYPES,
    UPLOAD_FIELD,
    Admission,
    ApiError,
    TokenGuard,
    parse_uploads,
    sniff_type,
)
from osteoscan.serve.render import heatmap_png, radiograph_png

log = logging.getLogger(__name__)

STATIC = files("osteoscan.serve") / "static"
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
MAX_NAME = 200


class KneeBox(BaseModel):
    """A knee's square crop in source pixels (it may reach past the image's edges)."""

    left: float = Field(description="x of the square's left edge, source pixels")
    top: float = Field(description="y of the square's top edge, source pixels")
    side: float = Field(description="the square's side, source pixels")


class KneeResult(BaseModel):
    knee: str = Field(
        description="'right' / 'left' (the patient's side) when the localiser can tell, else "
        "'knee 1' / 'knee 2' (image left to right), or 'knee' for a single knee"
    )
    probability: float = Field(description="calibrated probability of osteoporosis, this knee")
    prediction: str = Field(description="this knee's decision at the operating threshold")
    box: KneeBox
    mirrored: bool = Field(description="the crop was flipped left-right before the model saw it")


class FileResult(BaseModel):
    filename: str
    probability: float = Field(
        description="calibrated probability of osteoporosis (knee-ROI bundle: of summary_knee)"
    )
    prediction: str = Field(description="the decision at the bundle's operating threshold")
    threshold: float | None = Field(description="the operating threshold (binary task)")
    width: int = Field(description="the image's width in source pixels (the boxes' frame)")
    height: int = Field(description="the image's height in source pixels")
    knees: list[KneeResult] = Field(
        default_factory=list,
        description="knee-ROI bundle: one result per knee found, image left to right; empty "
        "for a bundle that reads the whole image",
    )
    summary_knee: str | None = Field(
        None, description="knee-ROI bundle: the knee whose result is the image-level one"
    )
    image_png: str | None = Field(None, description="the image as read, base64 PNG (explain)")
    heatmap_png: str | None = Field(
        None,
        description="Grad-CAM for osteoporosis, RGBA base64 PNG to lay over image_png (knee-ROI "
        "bundle: each knee's map pasted back onto the radiograph)",
    )


class PredictResponse(BaseModel):
    model: str
    version: str
    notice: str
    summary_rule: str | None = Field(
        None, description="knee-ROI bundle: how the image-level result is chosen from its knees"
    )
    results: list[FileResult]


class ModelInfo(BaseModel):
    model: str
    version: str = Field(description="first 12 hex digits of the weights' sha256")
    created: str
    osteoscan_version: str | None
    backend: str
    class_names: list[str]
    operating_threshold: float | None
    image_size: int
    roi: dict[str, Any] | None = Field(
        description="knee-ROI settings when the model reads one crop per knee, else null"
    )
    explain: bool = Field(description="whether explain=true is available (needs PyTorch)")
    notice: str
    metadata: dict[str, Any]


class Health(BaseModel):
    status: str


class ErrorDetail(BaseModel):
    detail: str


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [UPLOAD_FIELD],
                    "properties": {
                        UPLOAD_FIELD: {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": f"one or more images ({SUPPORTED_TYPES})",
                        }
                    },
                }
            }
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorDetail, "description": text}
    for code, text in {
        400: "no file, wrong field, malformed multipart, too many files, explain unavailable",
        401: "missing or wrong access token",
        413: "upload over the size limit",
        415: "not multipart/form-data, or a file that is not a supported image type",
        422: "an image that cannot be decoded (empty, truncated, too small, over the pixel limit)",
        503: "busy: retry after the Retry-After seconds",
    }.items()
}


def _display_name(filename: str | None) -> str:
    name = Path((filename or "").replace("\\", "/")).name[:MAX_NAME]
    return name or "upload"


class Service:
    """The opened bundle and everything the routes share."""

    def __init__(self, bundle_dir: Path | str, config: ServeConfig) -> None:
        self.config = config
        self.predictor = open_predictor(bundle_dir, config.backend, config.threads)
        self.metadata = self.predictor.metadata
        self.preprocessor = Preprocessor(self.metadata.input, config.max_pixels, self.metadata.roi)
        self.batcher = MicroBatcher(
            self.predictor.probabilities, config.max_batch, config.batch_window_ms / 1000
        )
        self.admission = Admission(config.max_pending, config.retry_after_s)
        self.explainer = self._open_explainer(bundle_dir) if config.explain else None
        self._explain_lock = threading.Lock()
        self._decode_limiter: anyio.CapacityLimiter | None = None

    @staticmethod
    def _open_explainer(bundle_dir: Path | str):
        try:
            from osteoscan.explain.gradcam import Explainer
        except ImportError:
            log.warning("Grad-CAM off: it needs PyTorch (pip install 'osteoscan[train]')")
            return None
        try:
            return Explainer.from_bundle(bundle_dir)
        except OsteoscanError as exc:
            log.warning("Grad-CAM off: %s", exc)
            return None

    def start(self) -> None:
        self.batcher.start()

    def close(self) -> None:
        self.batcher.close()

    @property
    def version(self) -> str:
        return self.metadata.weights_sha256[:12]

    def model_info(self) -> ModelInfo:
        meta = self.metadata
        return ModelInfo(
            model=meta.model,
            version=self.version,
            created=meta.created,
            osteoscan_version=meta.versions.get("osteoscan"),
            backend=self.predictor.backend.name,
            class_names=list(meta.class_names),
            operating_threshold=meta.operating_threshold,
            image_size=meta.input.image_size,
            roi=None if meta.roi is None else meta.roi.to_dict(),
            explain=self.explainer is not None,
            notice=SCREENING_NOTICE,
            metadata=meta.to_dict(),
        )

    async def _decode(self, data: bytes, name: str) -> PreparedImage:
        if not data:
            raise ApiError(422, f"{name}: file is empty (0 bytes); choose the image again")
        if sniff_type(data) is None:
            raise ApiError(
                415, f"{name}: not a supported image (by its content); send {SUPPORTED_TYPES}"
            )
        if self._decode_limiter is None:  # made inside the event loop, on first use
            self._decode_limiter = anyio.CapacityLimiter(self.config.decode_workers)
        try:
            return await anyio.to_thread.run_sync(
                self.preprocessor.load_bytes, data, name, limiter=self._decode_limiter
            )
        except BadImageError as exc:
            raise ApiError(422, str(exc)) from None

    def _explain(self, image: PreparedImage, name: str) -> tuple[str, str]:
        with self._explain_lock:  # one Grad-CAM at a time: it hooks the shared network
            heat = self.explainer.explain_prepared(image, name)
        side = self.config.display_max_side
        return radiograph_png(image.original, side), heatmap_png(heat.cam, side)

    def _result(
        self,
        name: str,
        probs: np.ndarray,
        crops: tuple[Crop, ...],
        shape: tuple[int, ...],
        pictures: tuple[str | None, str | None],
    ) -> FileResult:
        """One file's result from its probabilities: the whole image's, or one row per knee
        crop, the most abnormal knee's speaking for the image (as in ``predict``)."""
        meta, positive = self.metadata, self.predictor.positive_index
        chosen = most_abnormal(probs) if crops else 0
        knees = [  # none for a whole-image bundle, whose one row is the image's
            KneeResult(
                knee=crop.name,
                probability=float(p[positive]),
                prediction=decide(meta, p),
                box=KneeBox(left=crop.left, top=crop.top, side=crop.side),
                mirrored=crop.mirrored,
            )
            for crop, p in zip(crops, probs[: len(crops)], strict=True)
        ]
        return FileResult(
            filename=name,
            probability=float(probs[chosen][positive]),
            prediction=decide(meta, probs[chosen]),
            threshold=meta.operating_threshold,
            width=int(shape[1]),
            height=int(shape[0]),
            knees=knees,
            summary_knee=crops[chosen].name if crops else None,
            image_png=pictures[0],
            heatmap_png=pictures[1],
        )

    async def predict(self, request: Request, explain: bool) -> PredictResponse:
        config = self.config
        with self.admission:
            uploads = await parse_uploads(request, config.max_upload_bytes, config.max_files)
            if explain and self.explainer is None:
                raise ApiError(400, "explain=true needs PyTorch on the server; ask without it")
            names = [_display_name(u.filename) for u in uploads]
            contents = [u.file.read() for u in uploads]  # in memory (see parse_uploads)
            del uploads
            images = await asyncio.gather(*map(self._decode, contents, names))
            del contents
            inputs = [x for image in images for x in image.inputs]  # one per knee, or the square
            ends = np.cumsum([len(image.inputs) for image in images])[:-1]
            shapes = [image.original.shape for image in images]
            crops = [image.crops for image in images]
            if not explain:  # only Grad-CAM needs the full-size pixels: free them now
                images = [None] * len(images)
            probs = np.split(await self.batcher.run(inputs), ends)
            results = []
            for name, image, own, shape, knees in zip(
                names, images, probs, shapes, crops, strict=True
            ):
                pictures: tuple[str | None, str | None] = (None, None)
                if image is not None:
                    pictures = await anyio.to_thread.run_sync(self._explain, image, name)
                results.append(self._result(name, own, knees, shape, pictures))
            return PredictResponse(
                model=self.metadata.model,
                version=self.version,
                notice=SCREENING_NOTICE,
                summary_rule=None if self.metadata.roi is None else SUMMARY_RULE,
                results=results,
            )


def create_app(bundle_dir: Path | str, config: ServeConfig | None = None) -> FastAPI:
    """The service for ``bundle_dir``; the model is opened here, once."""
    config = config or ServeConfig()
    service = Service(bundle_dir, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="osteoscan",
        version=service.version,
        description=f"Knee X-ray osteoporosis screening with {service.metadata.model}. "
        f"{SCREENING_NOTICE}",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_exception_handler(ApiError, lambda request, exc: exc.response())
    if config.token is not None:
        app.add_middleware(
            TokenGuard,
            token=config.token,
            open_paths=frozenset({"/healthz", "/"}),
            open_prefixes=("/static/",),
        )
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    page = page.replace("{{NOTICE}}", escape(SCREENING_NOTICE))

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP})

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/api/v1/model", response_model=ModelInfo, responses={401: _ERRORS[401]})
    async def model() -> ModelInfo:
        return service.model_info()

    @app.post(
        "/api/v1/predict",
        response_model=PredictResponse,
        responses=_ERRORS,
        openapi_extra=_UPLOAD_BODY,
    )
    async def predict(
        request: Request,
        explain: bool = Query(False, description="add image_png and heatmap_png (Grad-CAM)"),
    ) -> PredictResponse:
        """Probability of osteoporosis and the decision for each file in the field 'files'."""
        return await service.predict(request, explain)

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def run(bundle_dir: Path | str, config: ServeConfig) -> None:
    """Serve ``bundle_dir`` with uvicorn until Ctrl-C."""
    import uvicorn

    app = create_app(bundle_dir, config)
    where = f"http://{config.host}:{config.port}/"
    log.info("serving %s (%s) at %s", app.state.service.metadata.model, config.backend, where)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info", access_log=False)
