"""Command-line start-up: how long ``osteoscan --help``, ``osteoscan models`` and an argument error take.

Each is run as a fresh subprocess (``python -m osteoscan.cli``, as the installed ``osteoscan`` script
does) ``--repeat`` times; prints the median and the slowest wall time, the target (under 1 s each),
and which heavy modules (torch, torchvision, Lightning, scikit-learn, SciPy) the command imported,
read from one extra run under ``python -X importtime``.

    .venv/bin/python benchmarks/cli_start.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

TARGET_S = 1.0
HEAVY = ("torch", "torchvision", "lightning", "sklearn", "scipy")
COMMANDS = {
    "osteoscan --help": ["--help"],
    "osteoscan models": ["models"],
    "argument error (train --epochs 0)": ["train", "--data", "d", "--out", "o", "--epochs", "0"],
    "argument error (train --image-size 7)": [
        "train", "--data", "d", "--out", "o", "--model", "cnn3", "--mode", "scratch",
        "--image-size", "7",
    ],
}  # fmt: skip


def _command(args: list[str], *flags: str) -> list[str]:
    return [sys.executable, *flags, "-m", "osteoscan.cli", *args]


def _heavy_imports(args: list[str]) -> list[str]:
    """Top-level packages from HEAVY that ``-X importtime`` shows the command importing."""
    done = subprocess.run(_command(args, "-X", "importtime"), capture_output=True, text=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    return [name for name in HEAVY if name in imported]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (default 5)")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}; target: under {TARGET_S:.1f} s each")
    for name, cli_args in COMMANDS.items():
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run(_command(cli_args), capture_output=True)
            times.append(time.perf_counter() - start)
        heavy = ", ".join(_heavy_imports(cli_args)) or "none"
        median = statistics.median(times)
        verdict = "ok" if max(times) < TARGET_S else "SLOW"
        print(
            f"{name:<40} median {median:6.2f} s  max {max(times):6.2f} s  {verdict:<4}  "
            f"heavy imports: {heavy}"
        )


if __name__ == "__main__":
    main()
