"""The ``predict``, ``explain``, ``calibrate`` and ``export`` commands: parse, call one library
function, print. Defaults and choices come from the library; torch and onnxruntime are
imported only inside the command that runs, so ``--help`` is instant and the slim install works.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from osteoscan.data.labels import OSTEOPOROSIS
from osteoscan.evaluation.calibration import DEFAULT_TARGET_SENSITIVITY
from osteoscan.inference.backends import BACKENDS, DEFAULT_BACKEND
from osteoscan.inference.export import FORMATS, ExportConfig
from osteoscan.inference.predict import DEFAULT_BATCH_SIZE


def cmd_predict(args: argparse.Namespace) -> int:
    from osteoscan.inference.predict import predict

    rows = predict(
        args.bundle,
        args.paths,
        backend=args.backend,
        batch_size=args.batch_size,
        out=args.out,
        cam_dir=args.cam,
        progress=not args.no_progress,
        threads=args.threads,
    )
    if args.out is None:
        print("path,probability,prediction,threshold,model,error,knee")
        for r in rows:
            numbers = "" if r.probability is None else f"{r.probability:.4f}"
            threshold = "" if r.threshold is None else f"{r.threshold:.4f}"
            print(
                f"{r.path},{numbers},{r.prediction or ''},{threshold},{r.model},{r.error or ''},"
                f"{r.knee or ''}"
            )
    images = [r for r in rows if r.knee is None]  # knee rows come with their image's row
    failed = sum(r.error is not None for r in images)
    where = f" to {args.out}" if args.out is not None else ""
    print(f"predicted {len(images) - failed} image(s){where}; {failed} failed", file=sys.stderr)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from osteoscan.explain.gradcam import explain

    heat = explain(args.bundle, args.image, args.out, args.target_class, args.target_layer)
    print(f"P({heat.class_name}) = {heat.probability:.3f} ({heat.prediction}); wrote {args.out}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from osteoscan.inference.calibrate import calibrate

    target = None if args.keep_threshold else args.target_sensitivity
    c = calibrate(args.bundle, args.data, target, backend=args.backend, seed=args.seed)
    print(f"temperature {c.temperature:.3f} on {c.n_images} images from {c.data_source}")
    print(
        f"ECE {c.ece_before:.3f} -> {c.ece_after:.3f}; Brier {c.brier_before:.3f} -> {c.brier_after:.3f}"
    )
    if c.threshold is not None:
        print(
            f"threshold {c.threshold:.4f} (95% CI {c.threshold_ci[0]:.4f}-{c.threshold_ci[1]:.4f}) "
            f"for sensitivity >= {c.target_sensitivity:.2f}: sensitivity {c.sensitivity:.3f} "
            f"(95% CI {c.sensitivity_ci[0]:.3f}-{c.sensitivity_ci[1]:.3f}), specificity "
            f"{c.specificity:.3f} (95% CI {c.specificity_ci[0]:.3f}-{c.specificity_ci[1]:.3f})"
        )
    print(f"stored in {args.bundle}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from osteoscan.inference.export import export_bundle

    config = ExportConfig(format=args.format, int8=args.int8)
    for e in export_bundle(args.bundle, args.images, config):
        print(
            f"{e.precision}: {e.file} agrees within {e.max_probability_difference:.2e} "
            f"(tolerance {e.tolerance:g}) on {e.n_check_images} images"
        )
    return 0


def add_inference_commands(sub: argparse._SubParsersAction) -> None:
    """Register predict, explain, calibrate and export on the ``osteoscan`` sub-parsers."""
    backend_help = (
        f"one of {', '.join(BACKENDS)} (default {DEFAULT_BACKEND}: the ONNX export if the "
        "bundle has one, else torch)"
    )
    p = sub.add_parser("predict", help="screen new X-rays (files, folders, DICOM) with a bundle")
    p.add_argument("bundle", type=Path)
    p.add_argument("paths", type=Path, nargs="+", help="image files and/or folders")
    p.add_argument("--out", type=Path, default=None, help="results .csv or .json (else stdout)")
    p.add_argument("--cam", type=Path, default=None, help="also write Grad-CAM overlays here")
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=BACKENDS, help=backend_help)
    p.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="images per batch once running (the first batches are smaller: 2, then +1/8 each)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("explain", help="Grad-CAM heat-map of one X-ray at its original size")
    p.add_argument("bundle", type=Path)
    p.add_argument("image", type=Path)
    p.add_argument("--out", type=Path, required=True, help="overlay PNG to write")
    p.add_argument("--class", dest="target_class", default=OSTEOPOROSIS, help="class to explain")
    p.add_argument(
        "--target-layer", default=None, help="dotted module path inside the architecture"
    )
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("calibrate", help="fit temperature and operating threshold on held-out data")
    p.add_argument("bundle", type=Path)
    p.add_argument("--data", type=Path, required=True, help="held-out labelled dataset")
    p.add_argument("--target-sensitivity", type=float, default=DEFAULT_TARGET_SENSITIVITY)
    p.add_argument("--keep-threshold", action="store_true", help="fit the temperature only")
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=BACKENDS, help=backend_help)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed for the CIs")
    p.set_defaults(func=cmd_calibrate)

    defaults = ExportConfig()
    p = sub.add_parser("export", help="write a checked ONNX model (and int8) into the bundle")
    p.add_argument("bundle", type=Path)
    p.add_argument("--format", default=defaults.format, choices=FORMATS)
    p.add_argument(
        "--int8",
        action="store_true",
        help=f"also a static int8 model, kept if within {defaults.int8_tolerance} of fp32",
    )
    p.add_argument(
        "--images",
        type=Path,
        nargs="+",
        required=True,
        help="real radiographs (files/folders) to check against and calibrate int8 on",
    )
    p.set_defaults(func=cmd_export)
