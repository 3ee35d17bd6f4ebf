"""The ``osteoscan`` command: parse, call one library function, print. No logic lives here."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from osteoscan.errors import OsteoscanError

log = logging.getLogger("osteoscan")


def _threshold(value: str) -> float | str:
    if value == "youden":
        return value
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("use a number in (0, 1) or 'youden'") from None
    if not 0.0 < number < 1.0:
        raise argparse.ArgumentTypeError("use a number in (0, 1) or 'youden'")
    return number


def _devices(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def _print_skipped(skipped) -> None:
    if skipped:
        print(f"\nskipped {len(skipped)} file(s):", file=sys.stderr)
        for problem in skipped:
            print(f"  {problem}", file=sys.stderr)


def _quiet_lightning(verbose: bool) -> None:
    """Lightning's banners and tips are noise at the command line; its warnings are kept.

    Called after Lightning is imported, since importing it resets its loggers to INFO. Lightning
    prints through its own handler, so its records must not reach the root handler a second time.
    """
    logging.getLogger("lightning").propagate = False
    if not verbose:
        for name in ("lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)


def cmd_synth(args: argparse.Namespace) -> int:
    from osteoscan.data.synth import make_synthetic_dataset

    manifest = make_synthetic_dataset(args.out, n=args.n, seed=args.seed, image_size=args.size)
    print(f"wrote {args.n} synthetic phantoms (not real radiographs) and {manifest}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from osteoscan.data.labels import Task
    from osteoscan.data.transforms import AugmentConfig
    from osteoscan.pipeline import train
    from osteoscan.training import TrainConfig

    _quiet_lightning(args.verbose)

    config = TrainConfig(
        model=args.model,
        mode=args.mode,
        task=Task(args.task, args.osteopenia),
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        patience=args.patience,
        val_fraction=args.val_fraction,
        seed=args.seed,
        augment=not args.no_augment,
        augment_config=AugmentConfig(hflip=args.hflip),
        frozen_views=args.frozen_views,
        precision=args.precision,
        accelerator=args.accelerator,
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy=args.strategy,
        workers=args.workers,
        deterministic=args.deterministic,
        threshold=args.threshold,
        keep_conflicts=args.keep_conflicts,
        strict=args.strict,
        weights_file=args.weights,
        weights_sha256=args.weights_sha256,
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
    )
    outcome = train(args.data, args.out, config)
    if outcome is None:  # a non-zero DDP rank
        return 0
    meta = outcome.metadata
    print(
        f"\n{meta['model']} ({meta['mode']}), {meta['task']['name']} task, seed {meta['seed']}: "
        f"trained on {meta['n_train']} images, validated on {meta['n_validation']}"
    )
    print(
        f"duplicate groups kept inside one split: {meta['leakage']['duplicate_groups']}; "
        f"images dropped for conflicting labels: "
        f"{meta['leakage']['images_dropped_for_conflicts']}"
    )
    print("\nvalidation metrics (the split used for early stopping, so optimistic):")
    print(outcome.validation.table())
    print(f"\nbundle: {outcome.bundle_path}")
    _print_skipped(outcome.skipped)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from osteoscan.pipeline import evaluate

    outcome = evaluate(
        args.bundle,
        args.data,
        strict=args.strict,
        n_boot=args.bootstrap,
        seed=args.seed,
        cache_dir=args.cache_dir,
    )
    for warning in outcome.warnings:
        log.warning(warning)
    if args.json:
        print(json.dumps(outcome.result.to_dict(), indent=2))
    else:
        print(f"bundle {outcome.bundle_path} on {args.data}")
        print(outcome.result.table())
        print("\nScreening aid only: not a diagnosis.")
    _print_skipped(outcome.skipped)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from osteoscan.models import MODELS

    for spec in MODELS.values():
        print(f"{spec.name:<16} modes: {', '.join(spec.modes):<26} {spec.description}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from osteoscan.audit import run_audit

    result = run_audit(args.data, out_dir=args.out, workers=args.workers, cache_dir=args.cache_dir)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.summary())
        if args.out:
            print(f"\nreport: {Path(args.out) / 'audit.html'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from osteoscan.cli_study import add_study_commands
    from osteoscan.models import MODELS, MODES

    parser = argparse.ArgumentParser(
        prog="osteoscan",
        description="Screen knee X-rays for osteoporosis with transfer-learned CNNs. "
        "A research screening aid, not a diagnostic device.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write the built-in synthetic phantom dataset")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--n", type=int, default=300, help="number of images (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=320, help="image side in pixels (default 320)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("train", help="train a model bundle on a dataset")
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="class-folder dataset, folder with manifest.csv, or a CSV manifest",
    )
    p.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    p.add_argument("--model", default="resnet50", help=f"one of {', '.join(MODELS)}")
    p.add_argument("--mode", default="finetune", choices=MODES)
    p.add_argument("--task", default="binary", choices=("binary", "three-class"))
    p.add_argument(
        "--osteopenia",
        default="exclude",
        choices=("exclude", "normal", "osteoporosis"),
        help="binary task: drop osteopenia (default) or merge it into one side",
    )
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=None, help="default: 1e-4 finetune, 1e-3 otherwise")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--patience", type=int, default=8, help="early stopping on validation AUC")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0, help="fixes split, augmentation and init")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--hflip", action="store_true", help="allow horizontal flips (off: anatomy)")
    p.add_argument(
        "--frozen-views",
        type=int,
        default=1,
        help="frozen mode: views embedded once per training image (1: the image itself; "
        "N: plus N-1 augmented views)",
    )
    p.add_argument(
        "--threshold",
        type=_threshold,
        default=0.5,
        help="decision threshold, or 'youden' to pick it on validation",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "32", "bf16", "16"),
        help="auto: bf16 on CPUs with native bf16 and on GPUs, else fp32",
    )
    p.add_argument("--accelerator", default="auto", help="auto, cpu, gpu")
    p.add_argument("--devices", type=_devices, default="auto", help="number of devices or auto")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn, ...")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels (slower)")
    p.add_argument(
        "--keep-conflicts",
        action="store_true",
        help="keep duplicate groups whose members have different labels",
    )
    p.add_argument("--strict", action="store_true", help="any bad file is fatal")
    p.add_argument("--weights", type=Path, default=None, help="ImageNet weights file (state dict)")
    p.add_argument("--weights-sha256", default=None, help="expected sha256 of --weights")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="decoded-pixel cache (default ~/.cache/osteoscan or $OSTEOSCAN_CACHE)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="metrics of a bundle on a labelled dataset, with 95%% CIs")
    p.add_argument("bundle", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--json", action="store_true", help="print metrics as JSON")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for CIs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strict", action="store_true")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("audit", help="find duplicates, label conflicts and shortcuts in a dataset")
    p.add_argument("data", type=Path, help="class-folder dataset or CSV manifest")
    p.add_argument("--out", type=Path, default=None, help="write audit.json and audit.html here")
    p.add_argument("--json", action="store_true", help="print the JSON document")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--cache-dir", type=Path, default=None)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("models", help="list the registered models and their modes")
    p.set_defaults(func=cmd_models)
    add_study_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if args.verbose:  # our own debug lines; third-party DEBUG (PIL's PNG chunks) is noise
        logging.getLogger("osteoscan").setLevel(logging.DEBUG)
    try:
        return args.func(args)
    except OsteoscanError as exc:
        print(f"osteoscan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("osteoscan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
