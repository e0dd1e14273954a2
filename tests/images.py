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
