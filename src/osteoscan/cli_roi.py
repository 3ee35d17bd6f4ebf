"""``osteoscan roi``: find the knees in a file or folder, write crops and a contact sheet."""

from __future__ import annotations

import argparse
from pathlib import Path

from osteoscan.roi.config import MIRROR_CHOICES, ROI_KINDS, RoiConfig

_DEFAULTS = RoiConfig()


def add_roi_parameters(p: argparse.ArgumentParser) -> None:
    """The localiser and crop settings (defaults from :class:`RoiConfig`), one spelling for every
    command that takes them."""
    p.add_argument(
        "--roi-scale",
        type=float,
        default=_DEFAULTS.roi_scale,
        help=f"crop side in joint widths (default {_DEFAULTS.roi_scale:g})",
    )
    p.add_argument(
        "--roi-mirror",
        default=_DEFAULTS.mirror,
        choices=MIRROR_CHOICES,
        help="flip crops of this side so all knees look alike (default %(default)s)",
    )
    p.add_argument(
        "--roi-min-confidence",
        type=float,
        default=_DEFAULTS.min_confidence,
        help=f"below it no knee is found (default {_DEFAULTS.min_confidence:g})",
    )


def add_roi_options(p: argparse.ArgumentParser, default_kind: str = "none") -> None:
    """``--roi none|knee`` and the ROI settings, for commands that can work on knee crops."""
    p.add_argument(
        "--roi",
        default=default_kind,
        choices=ROI_KINDS,
        help="knee: reduce every image to one square crop per knee first (default %(default)s)",
    )
    add_roi_parameters(p)


def roi_config_from_args(args: argparse.Namespace) -> RoiConfig:
    """The RoiConfig of :func:`add_roi_parameters`' flags."""
    return RoiConfig(
        roi_scale=args.roi_scale, mirror=args.roi_mirror, min_confidence=args.roi_min_confidence
    )


def roi_from_args(args: argparse.Namespace) -> RoiConfig | None:
    """The RoiConfig of :func:`add_roi_options`' flags; None for ``--roi none``."""
    return None if args.roi == "none" else roi_config_from_args(args)


def cmd_roi(args: argparse.Namespace) -> int:
    from osteoscan.roi.batch import run_roi

    config = roi_config_from_args(args)
    report = run_roi(args.path, args.out, config, size=args.size, write_crops=not args.no_crops)
    print(f"knees found in {report.found} of {len(report.images)} images; sheet: {report.sheet}")
    for image in report.failures:
        print(f"  {image.path}: {image.reason}")
    return 0


def add_roi_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``roi`` on the main parser's subcommands (defaults from :class:`RoiConfig`)."""
    p = subparsers.add_parser(
        "roi", help="find each knee joint and write square crops plus a contact sheet"
    )
    p.add_argument("path", type=Path, help="an image or a folder of images")
    p.add_argument("--out", type=Path, required=True, help="folder for crops/, roi.json, roi.html")
    p.add_argument("--size", type=int, default=224, help="crop side in pixels (default 224)")
    add_roi_parameters(p)
    p.add_argument("--no-crops", action="store_true", help="only the sheet and roi.json")
    p.set_defaults(func=cmd_roi)
