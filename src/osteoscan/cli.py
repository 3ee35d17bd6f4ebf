"""The ``osteoscan`` command: parse, call one library function, print. No logic lives here.

Every default and choice comes from the library's config objects, and building the parser imports
nothing heavy (no torch, torchvision or Lightning): ``--help``, ``models`` and argument errors
answer at once; each command imports what it needs when it runs.

Exit codes: 0 done; 2 bad input or options (one line, no traceback); 130 Ctrl-C; 143 SIGTERM;
141 standard output closed early (``osteoscan ... | head -1``), as for a process killed by SIGPIPE.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import get_args

from osteoscan.cli_roi import add_roi_options, roi_from_args
from osteoscan.data.augment import AugmentConfig
from osteoscan.data.labels import OsteopeniaPolicy, Task, TaskName
from osteoscan.data.synth import DEFAULT_VIEW_MIX, VIEWS, make_synthetic_dataset, parse_view_mix
from osteoscan.errors import InterruptedRun, OsteoscanError
from osteoscan.metadata import SPLITS
from osteoscan.models.registry import MODELS, MODES
from osteoscan.stats import DEFAULT_BOOTSTRAP, bootstrap_cis
from osteoscan.training.config import (
    ACCELERATORS,
    DEFAULT_LR,
    PRECISIONS,
    STRATEGIES,
    TrainConfig,
)

log = logging.getLogger("osteoscan")

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def _threshold(value: str) -> float | str:
    """A number or 'youden'; TrainConfig checks the range."""
    if value == "youden":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("use a number in (0, 1) or 'youden'") from None


def _devices(value: str) -> int | str:
    """A whole number or 'auto'; anything else goes to TrainConfig, which names what to use."""
    try:
        return int(value)
    except ValueError:
        return value


def _on(value: bool) -> str:
    return "on" if value else "off"


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


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig that ``osteoscan train`` runs; raises BadConfigError for refused values."""
    return TrainConfig(
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
        augment=args.augment,
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
        progress=args.progress,
        roi=roi_from_args(args),
    )


def cmd_synth(args: argparse.Namespace) -> int:
    views = None if args.views is None else parse_view_mix(args.views)  # bad text: one line
    manifest = make_synthetic_dataset(
        args.out, n=args.n, seed=args.seed, image_size=args.size, views=views
    )
    mix = "" if views is None else f", views {', '.join(f'{k} {v:.2f}' for k, v in views.items())}"
    print(f"wrote {args.n} synthetic phantoms (not real radiographs){mix} and {manifest}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    config = train_config_from_args(args)
    config.check_runtime()  # before the slow imports, so a bad option is answered at once
    from osteoscan.pipeline import train

    _quiet_lightning(args.verbose)
    outcome = train(args.data, args.out, config, overwrite=args.overwrite)
    if outcome is None:  # a non-zero DDP rank
        return 0
    meta = outcome.metadata
    seen = meta.training
    unit = "images"
    if meta.roi is not None:
        counts = {split: sum(i.split == split for i in seen.images) for split in SPLITS}
        unit = f"knee crops ({counts['train']} / {counts['validation']} radiographs)"
    print(
        f"\n{meta.model} ({meta.mode}), {meta.task.name} task, seed {meta.seed}: "
        f"trained on {seen.n_train} and validated on {seen.n_validation} {unit}"
    )
    print(
        f"duplicate groups kept inside one split: {seen.duplicate_groups}; "
        f"images dropped for conflicting labels: {seen.images_dropped_for_conflicts}"
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
    if args.reliability is not None and outcome.calibration is not None:
        from osteoscan.evaluation.calibration import save_reliability_diagram

        save_reliability_diagram(outcome.calibration, args.reliability)
    if args.json:
        print(json.dumps(outcome.to_dict(), indent=2))
    else:
        print(f"bundle {outcome.bundle_path} on {args.data}, scored {outcome.scoring}")
        print(outcome.result.table())
        if outcome.calibration is not None:
            c = outcome.calibration
            print(f"calibration: ECE {c.ece:.3f}, Brier score {c.brier:.3f}")
        if args.reliability is not None and outcome.calibration is not None:
            print(f"reliability diagram: {args.reliability}")
        print("\nScreening aid only: not a diagnosis.")
    _print_skipped(outcome.skipped)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from osteoscan.models import models_table

    print(models_table())
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from osteoscan.audit import run_audit, summary_text
    from osteoscan.audit.report import HTML_NAME

    result = run_audit(
        args.data,
        out_dir=args.out,
        workers=args.workers,
        cache_dir=args.cache_dir,
        roi=roi_from_args(args),
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(summary_text(result))
        if args.out:
            print(f"\nreport: {Path(args.out) / HTML_NAME}")
    return 0


def _add_synth(sub) -> None:
    defaults = inspect.signature(make_synthetic_dataset).parameters
    p = sub.add_parser("synth", help="write the built-in synthetic phantom dataset")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--n",
        type=int,
        default=defaults["n"].default,
        help="number of images (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=defaults["seed"].default)
    p.add_argument(
        "--size",
        type=int,
        default=defaults["image_size"].default,
        help="image side in pixels (default %(default)s)",
    )
    p.add_argument(
        "--views",
        default=None,
        metavar="MIX",
        help=f"views to draw, with their true joint centres in joints.json: mixed "
        f"({', '.join(f'{k}={v:g}' for k, v in DEFAULT_VIEW_MIX.items())}), one of {', '.join(VIEWS)}, or shares like "
        "single=0.6,bilateral=0.4 (default: single-knee close-ups only, no joints.json)",
    )
    p.set_defaults(func=cmd_synth)


def _add_train(sub) -> None:
    d = TrainConfig()
    on_off = argparse.BooleanOptionalAction
    lr_defaults = ", ".join(f"{lr:g} {mode}" for mode, lr in DEFAULT_LR.items())
    p = sub.add_parser("train", help="train a model bundle on a dataset")
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="class-folder dataset, folder with manifest.csv, or a CSV manifest",
    )
    p.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing osteoscan bundle at --out (nothing else is ever replaced)",
    )
    p.add_argument(
        "--model",
        default=d.model,
        choices=tuple(MODELS),
        metavar="MODEL",
        help=f"one of {', '.join(MODELS)} (default %(default)s; see 'osteoscan models')",
    )
    p.add_argument("--mode", default=d.mode, choices=MODES, help="default %(default)s")
    p.add_argument(
        "--task", default=d.task.name, choices=get_args(TaskName), help="default %(default)s"
    )
    p.add_argument(
        "--osteopenia",
        default=d.task.osteopenia,
        choices=get_args(OsteopeniaPolicy),
        help="binary task: drop osteopenia or merge it into one side (default %(default)s)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=d.image_size,
        help="input side in pixels, at least the model's minimum (default %(default)s)",
    )
    p.add_argument("--epochs", type=int, default=d.epochs, help="default %(default)s")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="default %(default)s")
    p.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default {lr_defaults})")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="default %(default)s")
    p.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help="epochs without a better validation AUC before stopping (default %(default)s)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help="share of image groups held out for validation (default %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        help="fixes split, augmentation and init (default %(default)s)",
    )
    p.add_argument(
        "--augment",
        action=on_off,
        default=d.augment,
        help=f"train-time augmentation (default {_on(d.augment)})",
    )
    p.add_argument(
        "--hflip",
        action=on_off,
        default=d.augment_config.hflip,
        help="horizontal flips in augmentation; left and right knees differ anatomically "
        f"(default {_on(d.augment_config.hflip)})",
    )
    p.add_argument(
        "--frozen-views",
        type=int,
        default=d.frozen_views,
        help="frozen mode: views embedded once per training image (1: the image itself; "
        "N: plus N-1 augmented views; default %(default)s)",
    )
    p.add_argument(
        "--threshold",
        type=_threshold,
        default=d.threshold,
        help="decision threshold in (0, 1), or 'youden' to pick it on validation "
        "(default %(default)s)",
    )
    p.add_argument(
        "--precision",
        default=d.precision,
        choices=PRECISIONS,
        help="auto: bf16 on CPUs with native bf16 and on GPUs, else fp32 (default %(default)s)",
    )
    p.add_argument(
        "--accelerator", default=d.accelerator, choices=ACCELERATORS, help="default %(default)s"
    )
    p.add_argument(
        "--devices",
        type=_devices,
        default=d.devices,
        help="devices per node, or auto (default %(default)s)",
    )
    p.add_argument("--num-nodes", type=int, default=d.num_nodes, help="default %(default)s")
    p.add_argument(
        "--strategy",
        default=d.strategy,
        choices=STRATEGIES,
        metavar="STRATEGY",
        help="Lightning strategy: auto, ddp, ddp_spawn, ddp_fork, fsdp, ... (default %(default)s)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=d.workers,
        help="data loader worker processes (default %(default)s)",
    )
    p.add_argument(
        "--deterministic",
        action=on_off,
        default=d.deterministic,
        help=f"deterministic kernels, slower (default {_on(d.deterministic)})",
    )
    p.add_argument(
        "--keep-conflicts",
        action=on_off,
        default=d.keep_conflicts,
        help="keep duplicate groups whose members have different labels "
        f"(default {_on(d.keep_conflicts)})",
    )
    p.add_argument(
        "--strict",
        action=on_off,
        default=d.strict,
        help=f"any bad file is fatal (default {_on(d.strict)})",
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=d.weights_file,
        help="ImageNet weights file (state dict) for finetune or frozen mode",
    )
    p.add_argument(
        "--weights-sha256", default=d.weights_sha256, help="expected sha256 of --weights"
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=d.cache_dir,
        help="decoded-pixel cache folder (default: under $OSTEOSCAN_CACHE or ~/.cache/osteoscan)",
    )
    p.add_argument(
        "--progress",
        action=on_off,
        default=d.progress,
        help=f"progress bar (default {_on(d.progress)})",
    )
    add_roi_options(p, "none" if d.roi is None else "knee")
    p.set_defaults(func=cmd_train)


def _add_evaluate(sub) -> None:
    boot_seed = inspect.signature(bootstrap_cis).parameters["seed"].default
    p = sub.add_parser("evaluate", help="metrics of a bundle on a labelled dataset, with 95%% CIs")
    p.add_argument("bundle", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--json", action="store_true", help="print metrics as JSON")
    p.add_argument(
        "--reliability",
        type=Path,
        default=None,
        metavar="PNG",
        help="write the reliability diagram (binary task) to this PNG file",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=DEFAULT_BOOTSTRAP,
        help="bootstrap resamples for CIs (default %(default)s)",
    )
    p.add_argument(
        "--seed", type=int, default=boot_seed, help="bootstrap seed (default %(default)s)"
    )
    p.add_argument("--strict", action="store_true", help="any bad file is fatal")
    p.add_argument("--cache-dir", type=Path, default=None, help="decoded-pixel cache folder")
    p.set_defaults(func=cmd_evaluate)


def _add_audit(sub) -> None:
    p = sub.add_parser("audit", help="find duplicates, label conflicts and shortcuts in a dataset")
    p.add_argument("data", type=Path, help="class-folder dataset or CSV manifest")
    p.add_argument("--out", type=Path, default=None, help="write audit.json and audit.html here")
    p.add_argument("--json", action="store_true", help="print the JSON document")
    p.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: from the CPU count)"
    )
    p.add_argument("--cache-dir", type=Path, default=None, help="fingerprint and pair-score cache")
    add_roi_options(p)
    p.set_defaults(func=cmd_audit)


def build_parser() -> argparse.ArgumentParser:
    from osteoscan.cli_inference import add_inference_commands
    from osteoscan.cli_roi import add_roi_commands
    from osteoscan.cli_serve import add_serve_commands
    from osteoscan.cli_study import add_study_commands

    parser = argparse.ArgumentParser(
        prog="osteoscan",
        description="Screen knee X-rays for osteoporosis with transfer-learned CNNs. "
        "A research screening aid, not a diagnostic device.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging and library tracebacks"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_synth(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_audit(sub)
    p = sub.add_parser("models", help="list the registered models and their modes")
    p.set_defaults(func=cmd_models)
    add_roi_commands(sub)
    add_inference_commands(sub)
    add_study_commands(sub)
    add_serve_commands(sub)
    return parser


class _TerminalFormatter(logging.Formatter):
    """One line per record. Other libraries' tracebacks (pydicom logs one for every decoder that
    fails) only with ``-v``: osteoscan's own message already says which file and what to do."""

    def __init__(self, verbose: bool) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        if self.verbose or record.name.partition(".")[0] == "osteoscan":
            return super().format(record)
        bare = logging.makeLogRecord(record.__dict__)  # other handlers still get the traceback
        bare.exc_info = bare.exc_text = bare.stack_info = None
        return super().format(bare)


@contextlib.contextmanager
def _terminal_logging(verbose: bool) -> Iterator[None]:
    """Records of INFO and above to stderr, one line each, for the duration of one command."""
    root, ours = logging.getLogger(), logging.getLogger("osteoscan")
    saved_levels = root.level, ours.level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_TerminalFormatter(verbose))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if verbose:  # our own debug lines; third-party DEBUG (PIL's PNG chunks) is noise
        ours.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_levels[0])
        ours.setLevel(saved_levels[1])


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM (``kill``, a scheduler's pre-emption) ends any command with a message and 143.

    Training installs its own handler for a clean stop and restores this one afterwards. Forked
    worker processes inherit the handler, and their pool stops them with SIGTERM: there it does
    what SIGTERM does by default, or the pool would wait forever for a worker that did not die.
    """
    if threading.current_thread() is not threading.main_thread():  # signals need the main thread
        yield
        return
    command_pid = os.getpid()

    def raise_terminated(signal_number: int, frame: object) -> None:
        if os.getpid() != command_pid:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise InterruptedRun("terminated (SIGTERM)", signal_number)

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        # the reader (e.g. ``head``) has all it wanted: no message, and no second error at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except InterruptedRun as exc:
        print(f"osteoscan: {exc}", file=sys.stderr)
        return exc.exit_code
    except OsteoscanError as exc:
        print(f"osteoscan: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("osteoscan: interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with _terminal_logging(args.verbose), _sigterm_raises():
        return _run(args)


if __name__ == "__main__":
    sys.exit(main())
