"""Real image files for tests: real encoders, real EXIF."""
from __future__ import annotations

import io
from fractions import Fraction

from PIL import Image

GPS_IFD = 0x8825


def _dms(value: float) -> tuple[Fraction, Fraction, Fraction]:
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    s = round((value - d - m / 60) * 3600 * 10000)
    return (Fraction(d, 1), Fraction(m, 1), Fraction(s, 10000))


def exif_bytes(*, lat: float | None = None, lon: float | None = None, orientation: int | None = None,
               make: str = "TestPhone", comment: str | None = "taken by Jane Citizen") -> bytes:
    exif = Image.Exif()
    exif[0x010F] = make  # Make
    exif[0x0110] = "Model X"  # Model
    if comment:
        exif[0x010E] = comment  # ImageDescription
    if orientation:
        exif[0x0112] = orientation
    if lat is not None and lon is not None:
        exif[GPS_IFD] = {
            1: "N" if lat >= 0 else "S",
            2: _dms(lat),
            3: "E" if lon >= 0 else "W",
            4: _dms(lon),
        }
    return exif.tobytes()


def photo(size=(640, 480), *, color=(120, 110, 100), pattern: bool = True) -> Image.Image:
    img = Image.new("RGB", size, color)
    if pattern:  # some structure so hashes differ between seeds
        px = img.load()
        for x in range(0, size[0], max(1, size[0] // 16)):
            for y in range(size[1]):
                px[x, y] = (255 - color[0], color[1], (x * 7) % 255)
    return img


def jpeg(*, lat=None, lon=None, orientation=None, size=(640, 480), color=(120, 110, 100), comment="taken by Jane Citizen") -> bytes:
    out = io.BytesIO()
    photo(size, color=color).save(out, "JPEG", quality=90,
                                  exif=exif_bytes(lat=lat, lon=lon, orientation=orientation, comment=comment))
    return out.getvalue()


def png(size=(320, 240), color=(10, 200, 30)) -> bytes:
    out = io.BytesIO()
    photo(size, color=color).save(out, "PNG")
    return out.getvalue()


def webp(size=(320, 240), color=(200, 10, 30)) -> bytes:
    out = io.BytesIO()
    photo(size, color=color).save(out, "WEBP", quality=80)
    return out.getvalue()


def heic(*, lat=None, lon=None, size=(320, 240), color=(40, 40, 200)) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    photo(size, color=color).save(out, "HEIF", quality=80, exif=exif_bytes(lat=lat, lon=lon))
    return out.getvalue()


def gif(size=(32, 32)) -> bytes:
    out = io.BytesIO()
    photo(size).save(out, "GIF")
    return out.getvalue()


LABELS = ("pothole", "graffiti", "fly_tipping", "no_issue")


def class_pattern(label: str, rng, size=(128, 96)):
    """Texture per class (orientation and frequency survive flips, crops and colour jitter): RGB uint8 array."""
    import numpy as np

    y, x = np.mgrid[0:size[1], 0:size[0]]
    phase = rng.uniform(0, 6.28)
    wave = {
        "pothole": np.sin(x / 3 + phase),  # vertical stripes
        "graffiti": np.sin(y / 3 + phase),  # horizontal stripes
        "fly_tipping": np.sign(np.sin(x / 6 + phase)) * np.sign(np.sin(y / 6 + phase)),  # checkerboard
        "no_issue": np.zeros_like(x, dtype=float),  # flat
    }[label]
    grey = 128 + 90 * wave + rng.normal(0, 12, size=wave.shape)
    return np.repeat(np.clip(grey, 0, 255)[..., None], 3, axis=2).astype("uint8")


def labelled_folder(root, per_class: int, seed: int = 0, labels=LABELS, looks_like: dict | None = None):
    """An ImageFolder tree root/<label>/<seed>-<i>.jpg of class_pattern JPEGs; `looks_like`
    maps a label to the pattern its photos get instead (a shifted domain). Returns root."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for label in labels:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = class_pattern((looks_like or {}).get(label, label), rng)
            Image.fromarray(pixels).save(root / label / f"{seed}-{i}.jpg", quality=90)
    return root
