"""Load on ``osteoscan serve``: many concurrent clients against one server on loopback.

Per model and backend: a fresh server process (``osteoscan serve`` on 127.0.0.1), then
``--requests`` POST /api/v1/predict calls (one real X-ray each) from ``--clients`` concurrent
clients, stopped at ``--time-cap`` seconds. Prints throughput, latency p50/p95/p99 of the answered
requests, errors (anything but 200 and 503, and transport failures), 503 count, the server's
peak resident memory, and the ratio to the library's own batch throughput on the same bundle
and images (``Predictor.predict``, decode + batch 16, in a fresh process: the reference the
micro-batcher must not fall short of), and the CPU cores the server and the clients (this
process) kept busy on average: the clients share the machine with the server.

Bundles are trained for 1 epoch on a few synthetic phantoms at 224 px, from scratch: speed only,
the predictions mean nothing. The CPU here is shared with other work: numbers vary between runs.

    .venv/bin/python benchmarks/serve_load.py [--models resnet50,efficientnet_lite0]
        [--backends torch,onnx] [--requests 400] [--clients 32] [--time-cap 240]
        [--serve-args '--batch-window-ms 5' --serve-args '--max-batch 8' --repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "knee-xray-372"
SIZE = 224
REFERENCE_BATCH = 16
REFERENCE_IMAGES = 64


def _bundle(model: str, work: Path) -> Path:
    """A 224-px bundle of ``model`` (1 epoch on phantoms) with its fp32 ONNX export (reused
    from ``work`` when an earlier run left it there)."""
    from osteoscan.data.synth import make_synthetic_dataset
    from osteoscan.inference.export import ExportConfig, export_bundle
    from osteoscan.pipeline import train
    from osteoscan.training import TrainConfig

    data = work / "phantoms"
    if not data.is_dir():
        make_synthetic_dataset(data, n=24, seed=0, image_size=SIZE)
    out = work / f"bundle-{model}"
    if (out / "model.onnx").is_file():  # made by an earlier run with the same --work
        return out
    config = TrainConfig(
        model=model,
        mode="scratch",
        image_size=SIZE,
        epochs=1,
        batch_size=8,
        augment=False,
        progress=False,
        accelerator="cpu",
        cache_dir=work / "cache",
    )
    train(data, out, config)
    export_bundle(out, [data], ExportConfig())
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wait_healthy(client, url: str, server: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            if client.get(url + "/healthz").status_code == 200:
                return
        except Exception:  # noqa: BLE001 - not listening yet
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become healthy in time")


_BOUNDARY = "osteoscan-load-boundary"


def _multipart(name: str, data: bytes) -> bytes:
    """One ``files`` field holding ``data``: the request body, encoded once per image."""
    head = (
        f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="files"; '
        f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    )
    return head.encode() + data + f"\r\n--{_BOUNDARY}--\r\n".encode()


def load(bundle: Path, backend: str, images: list[Path], args, serve_args: str = "") -> dict:
    """One server (``osteoscan serve`` with ``serve_args`` added), ``args.requests`` requests
    from ``args.clients`` threads. The clients are lean on purpose (the standard library's
    http.client, one kept-alive connection each, bodies encoded beforehand): they share the
    2 cores with the server, and every millisecond they spend is one the server lacks."""
    import http.client

    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "osteoscan.cli", "serve", str(bundle), "--port", str(port)]
    command += ["--backend", backend, "--no-explain", "--max-pending", str(args.max_pending)]
    command += shlex.split(serve_args)
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    bodies = [_multipart(p.name, p.read_bytes()) for p in images]
    headers = {"Content-Type": f"multipart/form-data; boundary={_BOUNDARY}"}
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    counter = iter(range(args.requests))
    try:
        with httpx.Client(timeout=args.time_cap) as probe:
            _wait_healthy(probe, url, server)
            probe.post(  # warm-up: first-call allocations
                url + "/api/v1/predict", content=bodies[0], headers=headers
            ).raise_for_status()
        start = time.perf_counter()
        deadline = start + args.time_cap
        client_cpu, server_cpu = time.process_time(), _cpu_seconds(server.pid)

        def client() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=args.time_cap)
            try:
                while time.perf_counter() < deadline:
                    with lock:
                        index = next(counter, None)
                    if index is None:
                        return
                    sent = time.perf_counter()
                    connection.timeout = max(1.0, deadline - sent)  # no request outlives the cap
                    if connection.sock is not None:
                        connection.sock.settimeout(connection.timeout)
                    try:
                        connection.request(
                            "POST", "/api/v1/predict", bodies[index % len(bodies)], headers
                        )
                        response = connection.getresponse()
                        response.read()  # http.client reconnects if the server closed it
                        key = str(response.status)
                    except (OSError, http.client.HTTPException) as exc:
                        key = type(exc).__name__
                        connection.close()
                    elapsed = time.perf_counter() - sent
                    with lock:
                        statuses[key] = statuses.get(key, 0) + 1
                        if key == "200":
                            latencies.append(elapsed)
            finally:
                connection.close()

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        client_cpu = time.process_time() - client_cpu
        server_cpu = _cpu_seconds(server.pid) - server_cpu
        peak = _peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    ok = statuses.get("200", 0)
    busy = statuses.get("503", 0)
    lat = np.asarray(latencies) * 1000 if latencies else np.full(1, np.nan)
    return {
        "sent": sum(statuses.values()),
        "ok": ok,
        "busy_503": busy,
        "errors": sum(statuses.values()) - ok - busy,
        "statuses": statuses,
        "wall_s": wall,
        "img_s": ok / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
        "peak_rss_mb": peak,
        "client_cores": client_cpu / wall,
        "server_cores": server_cpu / wall,
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reference(bundle: Path, backend: str, images: list[Path]) -> float:
    """Images per second of ``Predictor.predict`` (decode + batch 16) on the same files."""
    from osteoscan.inference.predict import open_predictor

    predictor = open_predictor(bundle, backend)
    paths = (images * (REFERENCE_IMAGES // len(images) + 1))[:REFERENCE_IMAGES]
    list(predictor.predict(paths[:REFERENCE_BATCH], REFERENCE_BATCH))  # warm-up
    start = time.perf_counter()
    rows = [row for row, _ in predictor.predict(paths, REFERENCE_BATCH)]
    assert all(row.error is None for row in rows)
    return len(rows) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,efficientnet_lite0")
    parser.add_argument("--backends", default="torch,onnx")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--time-cap", type=float, default=240.0, help="seconds per run")
    parser.add_argument("--max-pending", type=int, default=32, help="the server's --max-pending")
    parser.add_argument("--images", type=int, default=32, help="distinct real images sent")
    parser.add_argument("--data", type=Path, default=REAL, help="folder of real radiographs")
    parser.add_argument("--work", type=Path, default=None, help="where bundles go (default: temp)")
    parser.add_argument(
        "--serve-args",
        action="append",
        default=None,
        help="extra 'osteoscan serve' options, e.g. '--batch-window-ms 5'; repeat it to compare "
        "server settings (run in turn, after one library reference per repeat)",
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="times each server setting is run, interleaved"
    )
    parser.add_argument(
        "--reference", nargs=2, metavar=("BUNDLE", "BACKEND"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no real images at {args.data}; pass --data FOLDER")
    images = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    images = images[: args.images]
    if args.reference:
        print(json.dumps(reference(Path(args.reference[0]), args.reference[1], images)))
        return
    print(
        f"{args.requests} requests from {args.clients} clients (cap {args.time_cap:g} s), "
        f"{len(images)} real JPEGs, {SIZE} px, random weights; {os.cpu_count()} CPU(s) "
        "shared with other work"
    )
    header = (
        f"{'model':18} {'backend':7} {'ok':>4} {'503':>4} {'err':>4} {'img/s':>6} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'peak MB':>8} {'ref img/s':>9} {'ratio':>6} "
        f"{'server cores':>12} {'client cores':>12}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for model in [m for m in args.models.split(",") if m]:
            bundle = _bundle(model, work)
            print("\n" + header)
            for backend in [b for b in args.backends.split(",") if b]:
                for _ in range(args.repeats):
                    ref = _reference_in_fresh_process(bundle, backend, args)
                    for serve_args in args.serve_args or [""]:
                        r = load(bundle, backend, images, args, serve_args)
                        print(
                            f"{model:18} {backend:7} {r['ok']:4d} {r['busy_503']:4d} "
                            f"{r['errors']:4d} {r['img_s']:6.1f} {r['p50_ms']:7.0f} "
                            f"{r['p95_ms']:7.0f} {r['p99_ms']:7.0f} {r['peak_rss_mb']:8.0f} "
                            f"{ref:9.1f} {r['img_s'] / ref:6.2f} {r['server_cores']:12.2f} "
                            f"{r['client_cores']:12.2f}  {serve_args}",
                            flush=True,
                        )
                        if r["errors"]:
                            print(f"  statuses: {r['statuses']}")


def _reference_in_fresh_process(bundle: Path, backend: str, args) -> float:
    command = [sys.executable, __file__, "--data", str(args.data), "--images", str(args.images)]
    command += ["--reference", str(bundle), backend]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
