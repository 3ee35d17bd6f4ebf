"""Training speed: osteoscan against plain torchvision loops on the same images.

Prints, in one run:
1. images/s of ``resnet50 finetune`` training through osteoscan (decode-once cache, channels_last,
   bf16 autocast where the CPU has native bf16) against a plain fp32 torchvision loop that decodes
   and transforms every image from disk at every step;
2. wall time of one ``resnet50 frozen`` training (features computed once, head trained on them)
   against epoch-looping through the frozen network for the same number of epochs;
3. model-only resnet50 training steps in fp32 and in bf16 autocast, which shows whether this CPU
   gains from bf16 (AMX / AVX-512 BF16 CPUs do, about 3x; AVX2-only CPUs lose).

ImageNet weights cannot be downloaded here, so a randomly initialised torchvision state dict is
saved and loaded as the "pretrained" file: the computation is identical.

    .venv/bin/python benchmarks/train_speed.py [--images 64] [--train-epochs 2] [--frozen-epochs 30]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.transforms import v2

from osteoscan.data.labels import Task
from osteoscan.data.pixels import prepare
from osteoscan.data.records import load_dataset
from osteoscan.data.synth import make_synthetic_dataset
from osteoscan.data.transforms import Normalise
from osteoscan.models import build_model, get_spec
from osteoscan.training import TrainConfig, fit_classifier
from osteoscan.training.precision import cpu_has_fast_bf16, resolve_precision

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "knee-xray-372"
SIZE = 224


def dataset_paths(n: int, workdir: Path) -> tuple[list[Path], np.ndarray, str]:
    if REAL.is_dir():
        source, name = REAL, "real knee-xray-372"
    else:
        source = workdir / "synth"
        make_synthetic_dataset(source, n=2 * n, seed=0, image_size=512)
        name = "synthetic phantoms"
    records, targets = load_dataset(source).for_task(Task())
    rng = np.random.default_rng(0)
    pick = rng.choice(len(records), size=min(n, len(records)), replace=False)
    return [records[i].path for i in pick], np.asarray(targets)[pick], name


def plain_loop_images_per_s(paths, targets, steps_images: int, batch: int) -> float:
    """The textbook loop: decode + transform from disk every step, fp32, contiguous tensors."""
    transform = v2.Compose(
        [
            v2.Grayscale(3),
            v2.Resize(SIZE),
            v2.CenterCrop(SIZE),
            v2.RandomRotation(7),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    model = torchvision.models.resnet50(num_classes=2).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    done, start = 0, None
    while done < steps_images + batch:  # the first batch is an untimed warm-up
        for i in range(0, len(paths) - batch + 1, batch):
            if done == batch:  # first step is warm-up
                start = time.perf_counter()
            images = torch.stack(
                [transform(Image.open(p).convert("RGB")) for p in paths[i : i + batch]]
            )
            loss = torch.nn.functional.cross_entropy(
                model(images), torch.as_tensor(targets[i : i + batch])
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += batch
            if done >= steps_images + batch:
                break
    return (done - batch) / (time.perf_counter() - start)


def timed_fit(mode: str, pixels, targets, weights: Path, epochs: int, batch: int):
    """One osteoscan training of resnet50 in ``mode`` (a quarter of the images validate);
    returns (seconds, FitResult). Early stopping is off so every epoch runs."""
    config = TrainConfig(
        model="resnet50",
        mode=mode,
        image_size=SIZE,
        epochs=epochs,
        batch_size=batch,
        patience=epochs + 1,
        progress=False,
        weights_file=weights,
    )
    net, _ = build_model("resnet50", mode, 2, weights)
    spec = get_spec("resnet50")
    half = len(targets) // 4
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as logs:
        fit = fit_classifier(
            net,
            Normalise(spec.mean, spec.std),
            (pixels[half:], targets[half:]),
            (pixels[:half], targets[:half]),
            2,
            config,
            Path(logs),
        )
    return time.perf_counter() - start, fit


def osteoscan_images_per_s(pixels, targets, weights: Path, epochs: int, batch: int):
    elapsed, fit = timed_fit("finetune", pixels, targets, weights, epochs, batch)
    # validation forward passes are included in elapsed: an honest, slightly pessimistic rate
    return epochs * (len(targets) - len(targets) // 4) / elapsed, fit.precision


def frozen_times(pixels, targets, weights: Path, epochs: int, batch: int) -> tuple[float, float]:
    ours, _ = timed_fit("frozen", pixels, targets, weights, epochs, batch)
    spec = get_spec("resnet50")
    half = len(targets) // 4

    # epoch-looping: every epoch runs the frozen backbone over train and validation images again
    net, _ = build_model("resnet50", "frozen", 2, weights)
    normalise = Normalise(spec.mean, spec.std)
    optimizer = torch.optim.AdamW(net.head.parameters(), lr=1e-3)
    x = torch.from_numpy(pixels.astype(np.float32)).unsqueeze(1)
    y = torch.as_tensor(targets)
    measured_epochs = 2
    start = time.perf_counter()
    for _ in range(measured_epochs):
        net.train()
        for i in range(half, len(y), batch):
            loss = torch.nn.functional.cross_entropy(
                net(normalise(x[i : i + batch])), y[i : i + batch]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            net.eval()(normalise(x[:half]))
    per_epoch = (time.perf_counter() - start) / measured_epochs
    return ours, per_epoch * epochs


def autocast_check(batch: int = 8, steps: int = 2) -> tuple[float, float]:
    """Model-only resnet50 training steps on random tensors, channels_last: (fp32 img/s, bf16
    autocast img/s). Shows directly whether bf16 pays on this CPU (it needs AMX / AVX-512 BF16)."""
    rates = []
    for bf16 in (False, True):
        torch.manual_seed(0)
        model = torchvision.models.resnet50(num_classes=2).to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.randn(batch, 3, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 2, (batch,))
        for step in range(steps + 1):  # the first step is an untimed warm-up
            if step == 1:
                start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        rates.append(batch * steps / (time.perf_counter() - start))
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=64, help="images used (default 64)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--train-epochs", type=int, default=2, help="epochs timed for finetune")
    parser.add_argument("--frozen-epochs", type=int, default=30, help="epochs of a frozen run")
    parser.add_argument(
        "--skip-bf16-check", action="store_true", help="skip timing bf16 autocast on this CPU"
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        paths, targets, source = dataset_paths(args.images, workdir)
        weights = workdir / "resnet50-random.pth"
        torch.save(torchvision.models.resnet50().state_dict(), weights)
        pixels = prepare(paths, SIZE, cache_dir=workdir / "cache").pixels
        print(
            f"data: {len(paths)} {source} images at {SIZE} px; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; CPU native bf16: {cpu_has_fast_bf16()} "
            f"-> precision {resolve_precision('auto', 'cpu')}"
        )

        plain = plain_loop_images_per_s(paths, targets, args.train_epochs * len(paths), args.batch)
        ours, precision = osteoscan_images_per_s(
            pixels, targets, weights, args.train_epochs, args.batch
        )
        print(
            f"resnet50 finetune training: osteoscan {ours:.2f} img/s ({precision}), "
            f"plain fp32 torchvision loop {plain:.2f} img/s -> speed-up {ours / plain:.2f}x "
            f"(target >= 2.5x)"
        )

        if not args.skip_bf16_check:
            fp32, bf16 = autocast_check()
            print(
                f"resnet50 training steps on this CPU, channels_last: fp32 {fp32:.2f} img/s, "
                f"bf16 autocast {bf16:.2f} img/s ({bf16 / fp32:.2f}x); 'auto' uses bf16 only "
                "where the CPU has native bf16"
            )

        frozen, looping = frozen_times(pixels, targets, weights, args.frozen_epochs, args.batch)
        print(
            f"resnet50 frozen, {args.frozen_epochs} epochs: osteoscan {frozen:.1f} s, "
            f"epoch-looping through the frozen network {looping:.1f} s (2 epochs measured, "
            f"scaled) -> speed-up {looping / frozen:.1f}x (target >= 10x)"
        )


if __name__ == "__main__":
    main()
