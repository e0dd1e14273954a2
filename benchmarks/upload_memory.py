"""Peak memory of one photo upload at the pixel limit (docs/BENCHMARKS.md, "Memory per upload").

Writes a phone-like JPEG (EXIF GPS, orientation 6, sensor noise) and a PNG at
PHOTO_MAX_PIXELS into a scratch folder, then, each in a fresh process, runs
what intake does with the bytes (`reports.photos.read_photo`, the public copy,
the thumbnail, the difference hash) and reports the process's peak RSS and its
growth over the idle process. The baseline is the same pipeline decoding at
full size (`read_photo(full_size=True)`), which is what intake did before.

Usage: .venv/bin/python benchmarks/upload_memory.py [--megapixels 50] [--work /tmp/upload-memory]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _peak_mb() -> float:
    """This process's peak resident set (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def write_photos(work: Path, megapixels: float) -> dict[str, Path]:
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(REPO))
    from tests.images import exif_bytes

    width = int((megapixels * 1e6 * 3 / 2) ** 0.5)
    height = int(megapixels * 1e6 / width)
    rng = np.random.default_rng(0)
    ramp = np.linspace(40, 200, width, dtype=np.float32)[None, :, None]
    rows = np.linspace(0.8, 1.1, height, dtype=np.float32)[:, None, None]
    smooth = ramp * rows
    noisy = np.clip(smooth + rng.normal(0, 6, (height, width, 1)).astype(np.float32), 0, 255)
    img = Image.fromarray(np.repeat(noisy, 3, axis=2).astype(np.uint8))
    work.mkdir(parents=True, exist_ok=True)
    out = {"jpeg": work / f"photo-{megapixels:g}mp.jpg", "png": work / f"photo-{megapixels:g}mp.png"}
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80, exif=exif_bytes(lat=51.48, lon=-3.18, orientation=6))
    out["jpeg"].write_bytes(buf.getvalue())
    # A PNG that fits under PHOTO_MAX_BYTES at this size has flat content (a screenshot, a scan).
    Image.fromarray(np.repeat(smooth, 3, axis=2).astype(np.uint8)).save(out["png"], "PNG")
    return out


def child(path: Path, full_size: bool) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from reports import photos

    data = path.read_bytes()
    idle = _peak_mb()
    start = time.perf_counter()
    info = photos.read_photo(data, full_size=full_size)
    photos.public_derivative(info)
    photos.thumbnail(info)
    photos.difference_hash(info.image)
    seconds = time.perf_counter() - start
    peak = _peak_mb()
    print(json.dumps({"peak_mb": round(peak), "growth_mb": round(peak - idle), "seconds": round(seconds, 2),
                      "size": [info.width, info.height], "bytes": len(data)}))


def run(path: Path, full_size: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", str(path)] + (["--full-size"] if full_size else [])
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=50.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/upload-memory"))
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--full-size", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.full_size)
    files = write_photos(args.work, args.megapixels)
    print("| photo | bytes | decode | peak RSS MB | growth MB | seconds |")
    print("|---|---|---|---|---|---|")
    for kind, path in files.items():
        for full_size in (True, False):
            r = run(path, full_size)
            label = "full size (baseline)" if full_size else "reduced (served)"
            print(f"| {kind} {r['size'][0]}x{r['size'][1]} | {r['bytes'] / 1e6:.1f} MB | {label} | "
                  f"{r['peak_mb']} | {r['growth_mb']} | {r['seconds']} |")
    for path in files.values():
        path.unlink()


if __name__ == "__main__":
    main()
