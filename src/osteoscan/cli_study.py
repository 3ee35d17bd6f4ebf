"""``osteoscan study`` and ``osteoscan report``: parse, call the study library, print.

Options left out keep the study config's or TrainConfig's own defaults (None here means "not
given"), so no default is typed twice.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from osteoscan.study.config import PACKAGED_STUDIES


def _devices(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def _options(args: argparse.Namespace):
    from dataclasses import replace

    from osteoscan.study.config import check_counts, load_study_config
    from osteoscan.study.runner import RunOptions
    from osteoscan.training import TrainConfig

    config = load_study_config(args.config)
    overrides = {
        k: getattr(args, k) for k in ("folds", "repeats", "seed") if getattr(args, k) is not None
    }
    config = check_counts(replace(config, **overrides))
    runtime = {
        k: getattr(args, k)
        for k in (
            "accelerator",
            "devices",
            "strategy",
            "num_nodes",
            "precision",
            "workers",
            "cache_dir",
        )
        if getattr(args, k) is not None
    }
    return RunOptions(
        config=config,
        quick=args.quick,
        no_pretrained=args.no_pretrained,
        only=tuple(args.only or ()),
        fold=args.fold,
        repeat=args.repeat,
        externals=tuple(args.external or ()),
        train=TrainConfig(progress=args.progress, **runtime),
        write_report=not args.no_report,
        **({"bootstrap": args.bootstrap} if args.bootstrap is not None else {}),
    )


_REPEATED_OPTIONS = (
    "config",
    "folds",
    "repeats",
    "seed",
    "cache_dir",
    "accelerator",
    "devices",
    "strategy",
    "num_nodes",
    "precision",
    "workers",
)


def _unit_commands(args: argparse.Namespace, plan) -> list[str]:
    """One command per unit, with this call's options, for a job array (SLURM, GNU parallel...)."""
    common = ["osteoscan", "study", "--data", str(args.data), "--out", str(args.out)]
    for name in _REPEATED_OPTIONS:
        if getattr(args, name) is not None:
            common += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    for external in args.external or ():
        common += ["--external", str(external)]
    common += [
        f for f, on in (("--quick", args.quick), ("--no-pretrained", args.no_pretrained)) if on
    ]
    commands = []
    for planned in plan.units:
        u = planned.unit
        unit = ["--only", u.configuration, "--repeat", str(u.repeat), "--fold", str(u.fold)]
        commands.append(shlex.join([*common, *unit, "--no-report"]))
    return commands


def cmd_study(args: argparse.Namespace) -> int:
    from osteoscan.study.runner import plan_study, run_study

    options = _options(args)
    if args.plan:
        plan = plan_study(args.out, options)
        print(plan.text(), file=sys.stderr)
        for command in _unit_commands(args, plan):
            print(command)
        print(shlex.join(["osteoscan", "report", str(args.out)]))
        return 0
    from osteoscan.cli import _quiet_lightning

    _quiet_lightning(args.verbose)
    outcome = run_study(args.data, args.out, options)
    print(
        f"{len(outcome.ran)} unit(s) trained, {len(outcome.plan.units) - len(outcome.ran)} already done"
    )
    if outcome.report is not None:
        print(f"report: {outcome.report}")
    else:
        print(f"merge the units into a report with: osteoscan report {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from osteoscan.study.report import write_report

    print(
        f"report: {write_report(args.dir, **({'n_boot': args.bootstrap} if args.bootstrap else {}))}"
    )
    return 0


def add_study_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``study`` and ``report`` to the ``osteoscan`` command."""
    p = sub.add_parser(
        "study",
        help="the six-model comparison (or your config) on leakage-free folds, with a report",
        description="Train every configuration on identical grouped folds and write "
        "report.html, report.md and results.json. Finished units are kept: re-run to resume.",
    )
    p.add_argument("--data", type=Path, required=True, help="class-folder dataset or CSV manifest")
    p.add_argument("--out", type=Path, required=True, help="study folder (units, report)")
    p.add_argument(
        "--config",
        default=None,
        help=f"study YAML file, or a packaged study: {', '.join(PACKAGED_STUDIES)} "
        "(default: the published six)",
    )
    p.add_argument("--folds", type=int, default=None, help="folds (default: the config's, 5)")
    p.add_argument("--repeats", type=int, default=None, help="repeats of the k folds (default 1)")
    p.add_argument("--seed", type=int, default=None, help="fixes folds, splits and init")
    p.add_argument("--external", type=Path, action="append", help="external test set (repeatable)")
    p.add_argument("--only", action="append", help="run only this configuration (repeatable)")
    p.add_argument("--fold", type=int, default=None, help="run only this fold (1-based)")
    p.add_argument("--repeat", type=int, default=None, help="run only this repeat (1-based)")
    p.add_argument("--plan", action="store_true", help="print one command per unit and stop")
    p.add_argument(
        "--no-pretrained",
        action="store_true",
        help="configurations whose ImageNet weights are absent train from random init (labelled)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="the config's quick CPU setting: small images, few epochs",
    )
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    p.add_argument("--cache-dir", type=Path, default=None, help="decoded-pixel cache")
    p.add_argument("--accelerator", default=None, help="auto, cpu, gpu")
    p.add_argument("--devices", type=_devices, default=None, help="devices per unit (DDP if >1)")
    p.add_argument("--strategy", default=None, help="auto, ddp, ...")
    p.add_argument("--num-nodes", type=int, default=None)
    p.add_argument("--precision", default=None, choices=("auto", "32", "bf16", "16"))
    p.add_argument("--workers", type=int, default=None, help="data loader worker processes")
    p.add_argument("--progress", action="store_true", help="show a progress bar per unit")
    p.add_argument("--bootstrap", type=int, default=None, help="bootstrap resamples for CIs")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("report", help="merge a study folder's finished units into its report")
    p.add_argument("dir", type=Path, help="the study's --out folder")
    p.add_argument("--bootstrap", type=int, default=None, help="bootstrap resamples for CIs")
    p.set_defaults(func=cmd_report)
