"""Datasets: ImageFolder trees and manifests, seeded stratified splits, transforms, sampling.

A manifest is JSONL (one object per line) or CSV (with a header row) with the
columns ``path`` (relative to the manifest's folder, or absolute), ``label``
(class slug), ``report_id`` (optional), ``source`` (``local``: the council's own
staff-verified photos, ``bootstrap``: public or curated photos; empty means the
loader's default) and ``split`` (``train``, ``val`` or ``holdout``; empty means
``train``). docs/TRAINING.md describes it.
"""
from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from inference.preprocess import IMAGE_SUFFIXES, INTERPOLATIONS, PreprocessSpec, decode, preprocess, resize_crop, to_array

SPLITS = ("train", "val", "holdout")
SOURCES = ("local", "bootstrap")  # the council's own verified photos; public/curated photos


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str
    report_id: str | None = None
    split: str = "train"  # one of SPLITS
    source: str = "bootstrap"  # one of SOURCES: training weighs local photos above bootstrap ones


def load_samples(source: Path, *, default_source: str = "bootstrap") -> list[Sample]:
    """Samples from an ImageFolder tree (``<class>/<image>``) or a ``.jsonl``/``.csv`` manifest.

    A folder's images, and manifest rows without a ``source``, get ``default_source``.
    """
    if default_source not in SOURCES:
        raise ValueError(f"unknown source {default_source!r}; choose {', '.join(SOURCES)}")
    source = Path(source)
    if source.is_dir():
        return [
            Sample(path=p, label=class_dir.name, source=default_source)
            for class_dir in sorted(d for d in source.iterdir() if d.is_dir() and not d.name.startswith("."))
            for p in sorted(class_dir.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES
        ]
    if source.suffix == ".jsonl":
        rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    elif source.suffix == ".csv":
        with source.open(newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        raise ValueError(f"unknown data source {source}; give a folder, a .jsonl or a .csv manifest")
    samples = []
    for n, row in enumerate(rows, 1):
        split = row.get("split") or "train"
        if split not in SPLITS:
            raise ValueError(f"{source} row {n}: unknown split {split!r}; choose {', '.join(SPLITS)}")
        origin = row.get("source") or default_source
        if origin not in SOURCES:
            raise ValueError(f"{source} row {n}: unknown source {origin!r}; choose {', '.join(SOURCES)}")
        report_id = row.get("report_id")
        samples.append(
            Sample(
                path=source.parent / row["path"],
                label=str(row["label"]),
                report_id=None if report_id in (None, "") else str(report_id),
                split=split,
                source=origin,
            )
        )
    return samples


def write_manifest(samples: Iterable[Sample], path: Path) -> None:
    """Write ``samples`` as a JSONL manifest (absolute paths)."""
    lines = (
        json.dumps({"path": str(Path(s.path).resolve()), "label": s.label, "report_id": s.report_id,
                    "source": s.source, "split": s.split})
        for s in samples
    )
    Path(path).write_text("".join(line + "\n" for line in lines))


def class_names(samples: Iterable[Sample]) -> list[str]:
    """Sorted class slugs: the model's output order."""
    return sorted({s.label for s in samples})


def stratified_take(
    samples: Sequence[Sample], *, seed: int, per_class: int | None = None, fraction: float | None = None
) -> tuple[list[Sample], list[Sample]]:
    """Split into (taken, rest), taking ``per_class`` or ``fraction`` (at least one) of each class, seeded.

    With ``per_class`` a class with fewer images gives all of them. The
    result depends only on the seed and the set of samples, not their order.
    """
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for s in sorted(samples, key=lambda s: (s.label, str(s.path))):
        by_class[s.label].append(s)
    rng = np.random.default_rng(seed)
    taken, rest = [], []
    for label in sorted(by_class):
        items = by_class[label]
        order = rng.permutation(len(items))
        n = per_class if per_class is not None else max(1, round(fraction * len(items)))
        taken += [items[i] for i in order[:n]]
        rest += [items[i] for i in order[n:]]
    return taken, rest


def stratified_folds(labels: Sequence[int], k: int, seed: int) -> np.ndarray:
    """A fold number in ``0..k-1`` per item: each class dealt round-robin over the folds in a seeded order.

    Every fold gets at least one item of each class that has ``k`` or more.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        folds[members[rng.permutation(len(members))]] = np.arange(len(members)) % k
    return folds


def summary(samples: Sequence[Sample], source: str) -> dict:
    """The ``training_data`` block of metadata.json."""
    return {"n_images": len(samples), "per_class": dict(sorted(Counter(s.label for s in samples).items())),
            "per_source": dict(sorted(Counter(s.source for s in samples).items())), "source": source}


# --- transforms ---------------------------------------------------------------------------------


def eval_transform(img: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """The serving transform, exactly: resize, centre crop, normalise."""
    return preprocess(img, spec, fast_decode=False)


def load_for_training(path: Path, spec: PreprocessSpec) -> tuple[Image.Image, Image.Image]:
    """Decode once: the serving transform's centre crop (still 8-bit: ``to_array`` makes it the network
    input), and a copy shrunk to ``resize_size`` for augmentation."""
    img = decode(path)
    small = img.copy()
    scale = spec.resize_size / min(img.size)
    if scale < 1:
        small = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR)
    return resize_crop(img, spec), small


@dataclass(frozen=True)
class Augment:
    """Train-time augmentation for street photos: no vertical flips, no rotations."""

    scale: tuple[float, float] = (0.35, 1.0)  # area of the random crop, share of the image
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio of the random crop
    hflip: float = 0.5  # probability of a horizontal flip
    jitter: float = 0.3  # brightness/contrast/saturation factors drawn from [1 - j, 1 + j]

    def __call__(self, img: Image.Image, spec: PreprocessSpec, rng: np.random.Generator) -> np.ndarray:
        return to_array(self._crop_flip_jitter(img, spec, rng), spec)

    def _crop_flip_jitter(self, img: Image.Image, spec: PreprocessSpec, rng: np.random.Generator) -> Image.Image:
        crop = self._random_resized_crop(img, spec, rng)
        if rng.random() < self.hflip:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        for enhancer in rng.permutation([ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color]):
            crop = enhancer(crop).enhance(rng.uniform(1 - self.jitter, 1 + self.jitter))
        return crop

    def _random_resized_crop(self, img: Image.Image, spec: PreprocessSpec, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        for _ in range(10):
            area = w * h * rng.uniform(*self.scale)
            aspect = np.exp(rng.uniform(np.log(self.ratio[0]), np.log(self.ratio[1])))
            cw, ch = round(np.sqrt(area * aspect)), round(np.sqrt(area / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                left, top = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
                break
        else:  # fall back to the centre square
            cw = ch = min(w, h)
            left, top = (w - cw) // 2, (h - ch) // 2
        size = (spec.input_size, spec.input_size)
        return img.resize(size, INTERPOLATIONS[spec.interpolation], box=(left, top, left + cw, top + ch))


@dataclass(frozen=True)
class PhoneAugment(Augment):
    """:class:`Augment` plus what a phone at night does to a photo: low light (gamma), sensor noise,
    motion blur, flash glare, JPEG re-compression, and wider crops that keep the context around the subject.

    Each effect is applied with its own probability. Measured against :class:`Augment` on a council's
    photos by ``benchmarks/local_bench.py`` (docs/TRAINING.md says what it changed).
    """

    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (3 / 5, 5 / 3)
    low_light: float = 0.4  # probability of darkening by a gamma in [1.5, 3] and a gain in [0.3, 0.7]
    noise: float = 0.4  # probability of Gaussian sensor noise, sigma in [3, 12] grey levels
    blur: float = 0.3  # probability of a 5-pixel motion blur, horizontal or vertical
    glare: float = 0.2  # probability of a bright flash spot somewhere in the frame
    jpeg: float = 0.5  # probability of re-compression at quality [20, 60]

    def __call__(self, img: Image.Image, spec: PreprocessSpec, rng: np.random.Generator) -> np.ndarray:
        x = np.asarray(self._crop_flip_jitter(img, spec, rng), dtype=np.float32)
        if rng.random() < self.low_light:
            x = 255 * (x / 255) ** rng.uniform(1.5, 3.0) * rng.uniform(0.3, 0.7)
        if rng.random() < self.glare:
            h, w = x.shape[:2]
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.1, 0.35) * min(h, w)
            yy, xx = np.ogrid[:h, :w]
            x = x + 255 * rng.uniform(0.4, 0.9) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
        if rng.random() < self.noise:
            x = x + rng.normal(0, rng.uniform(3, 12), x.shape)
        crop = Image.fromarray(x.clip(0, 255).astype(np.uint8))
        if rng.random() < self.blur:
            line = [0] * 25
            for i in range(5):
                line[(10 + i) if rng.random() < 0.5 else (2 + 5 * i)] = 1
            crop = crop.filter(ImageFilter.Kernel((5, 5), line, scale=sum(line)))
        if rng.random() < self.jpeg:
            buf = io.BytesIO()
            crop.save(buf, "JPEG", quality=int(rng.integers(20, 61)))
            crop = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        return to_array(crop, spec)
