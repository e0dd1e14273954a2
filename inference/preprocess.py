"""Image decoding and preprocessing shared by serving and training.

Pure Pillow + numpy: imported by the web process, the task worker *and* the
offline ``training`` package, so the pixels a model is evaluated on during
training are produced by exactly the code that serves it. The numbers
(sizes, mean, std, interpolation) always come from a model's
``metadata.json`` via :class:`PreprocessSpec`, never from constants here.
"""
from __future__ import annotations

import functools
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

# The photo formats a citizen may upload, by file name: what folders of photos are searched for,
# so training, importing and benchmarking see the files serving would take.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"})

INTERPOLATIONS = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


@dataclass(frozen=True)
class PreprocessSpec:
    """How a model wants its input; stored under ``"preprocess"`` in metadata.json."""

    input_size: int = 224  # side of the square crop fed to the network, pixels
    resize_size: int = 256  # shorter side after resize, before the centre crop, pixels
    interpolation: str = "bilinear"  # one of INTERPOLATIONS
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # per channel, on [0, 1] pixels
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"unknown interpolation {self.interpolation!r}; choose {', '.join(INTERPOLATIONS)}"
            )
        if self.resize_size < self.input_size:
            raise ValueError("resize_size must be >= input_size")

    @classmethod
    def from_dict(cls, data: dict) -> "PreprocessSpec":
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("mean", "std"):
            if key in kwargs:
                kwargs[key] = tuple(float(x) for x in kwargs[key])
        return cls(**kwargs)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


@functools.cache
def register_heif_opener() -> None:
    """Let Pillow open HEIC/HEIF (the iPhone default); idempotent, called before every decode."""
    import pillow_heif

    pillow_heif.register_heif_opener()


def decode(source: bytes | str | Path | BinaryIO | Image.Image, *, draft_for: PreprocessSpec | None = None) -> Image.Image:
    """Decode an image to upright RGB.

    With ``draft_for``, JPEGs are decoded at a reduced DCT scale (1/2, 1/4,
    1/8) that still leaves the shorter side >= ``resize_size``: a 12 MP phone
    photo comes out at 504x378 for a 329 px resize, with no full-size resize
    afterwards (the entropy decoding of the whole file remains). EXIF orientation is applied after decoding, so the result is
    what a person sees. A PIL image passed in is never modified.
    """
    register_heif_opener()
    if isinstance(source, Image.Image):
        img = ImageOps.exif_transpose(source)  # a copy: the caller's image stays as it was
    else:
        if isinstance(source, bytes):
            source = io.BytesIO(source)
        img = Image.open(source)
        if draft_for is not None and img.format == "JPEG":
            # draft() keeps both sides >= the request, so asking for a square of
            # resize_size keeps the shorter side large enough whatever the orientation.
            img.draft("RGB", (draft_for.resize_size, draft_for.resize_size))
        ImageOps.exif_transpose(img, in_place=True)  # saves a copy of the decoded image
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def resize_crop(img: Image.Image, spec: PreprocessSpec) -> Image.Image:
    """Resize the shorter side to ``resize_size`` and take the centre ``input_size`` square."""
    w, h = img.size
    scale = spec.resize_size / min(w, h)
    new_w, new_h = max(spec.resize_size, round(w * scale)), max(spec.resize_size, round(h * scale))
    # reducing_gap lets Pillow shrink by an integer factor first (cheap box
    # filter) when the image is much larger than the target.
    img = img.resize((new_w, new_h), INTERPOLATIONS[spec.interpolation], reducing_gap=3.0)
    left = (new_w - spec.input_size) // 2
    top = (new_h - spec.input_size) // 2
    return img.crop((left, top, left + spec.input_size, top + spec.input_size))


def to_array(img: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """RGB image -> normalised float32 CHW array."""
    # (x / 255 - mean) / std as one multiply and one subtraction, written straight into CHW.
    std = np.asarray(spec.std, dtype=np.float32)
    scale = (1.0 / (255.0 * std)).astype(np.float32)[:, None, None]
    offset = (np.asarray(spec.mean, dtype=np.float32) / std)[:, None, None]
    hwc = np.asarray(img, dtype=np.float32)
    chw = np.empty((3, *hwc.shape[:2]), dtype=np.float32)
    np.multiply(hwc.transpose(2, 0, 1), scale, out=chw)
    chw -= offset
    return chw


def preprocess(source, spec: PreprocessSpec, *, fast_decode: bool = True) -> np.ndarray:
    """Bytes/path/image -> CHW float32 array ready for the network (eval transform)."""
    img = decode(source, draft_for=spec if fast_decode else None)
    return to_array(resize_crop(img, spec), spec)
