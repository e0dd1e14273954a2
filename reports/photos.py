"""Photo intake: validate by content, read EXIF GPS, build metadata-free derivatives.

Everything here works on bytes and Pillow images; nothing touches storage or
the database, so a rejected photo cannot leave anything behind.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from PIL import Image, ImageOps, UnidentifiedImageError

from inference.preprocess import register_heif_opener

ACCEPTED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "HEIF": "heic"}
ACCEPTED_HUMAN = gettext_lazy("JPEG, PNG, WebP or HEIC/HEIF")
GPS_IFD = 0x8825


@dataclass(frozen=True)
class PhotoInfo:
    data: bytes
    format: str  # key of ACCEPTED_FORMATS
    width: int  # as displayed (after EXIF orientation)
    height: int
    gps: tuple[float, float] | None  # (latitude, longitude)
    # Decoded, oriented, RGB, and reduced so its longer side is about PUBLIC_PHOTO_MAX_SIDE:
    # every derivative is made from it, so a 50-megapixel photo never sits in memory at full size
    # more than once (JPEG decodes at 1/2, 1/4 or 1/8 scale straight from the DCT).
    image: Image.Image

    @property
    def extension(self) -> str:
        return ACCEPTED_FORMATS[self.format]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def read_photo(data: bytes, *, full_size: bool = False) -> PhotoInfo:
    """Validate an upload and decode it. Raises ValidationError with a citizen-readable message.

    The decoded image is reduced to PUBLIC_PHOTO_MAX_SIDE unless `full_size`. The whole
    file is decoded either way, so truncated and corrupt files are caught."""
    max_side = None if full_size else settings.PUBLIC_PHOTO_MAX_SIDE
    if not data:
        raise ValidationError(_("The photo is empty."), code="empty")
    if len(data) > settings.PHOTO_MAX_BYTES:
        raise ValidationError(
            _("The photo is too large (%(size)s MB); the limit is %(limit)s MB.") % {
                "size": f"{len(data) / 1e6:.1f}", "limit": f"{settings.PHOTO_MAX_BYTES / 1e6:.0f}"},
            code="too_large",
        )
    try:
        with warnings.catch_warnings():
            # Pillow warns between 1x and 2x MAX_IMAGE_PIXELS; treat that as an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            register_heif_opener()  # HEIC/HEIF uploads (the iPhone default)
            img = Image.open(io.BytesIO(data))
            if img.format not in ACCEPTED_FORMATS:
                raise ValidationError(
                    _("Unsupported image type (%(format)s); please send a %(accepted)s photo.") % {
                        "format": img.format, "accepted": ACCEPTED_HUMAN},
                    code="unsupported_type",
                )
            if img.width * img.height > settings.PHOTO_MAX_PIXELS:
                raise ValidationError(
                    _("The photo has too many pixels (%(size)s); the limit is %(limit)s megapixels.") % {
                        "size": f"{img.width}x{img.height}", "limit": f"{settings.PHOTO_MAX_PIXELS / 1e6:.0f}"},
                    code="too_many_pixels",
                )
            exif = img.getexif()
            width, height = img.size
            if max_side and max(width, height) > max_side:
                scale = max_side / max(width, height)
                img.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))  # JPEG only
            img.load()  # decode the whole file: catches truncated and corrupt files
            if max_side and img.mode in ("P", "1"):  # palette images would be resized nearest-neighbour
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            if max_side:
                img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
            oriented = ImageOps.exif_transpose(img).convert("RGB")
            if oriented.size != img.size:  # turned a quarter: the displayed sides swap
                width, height = height, width
    except ValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError(
            _("The photo has too many pixels; the limit is %(limit)s megapixels.") % {
                "limit": f"{settings.PHOTO_MAX_PIXELS / 1e6:.0f}"},
            code="too_many_pixels",
        ) from None
    except UnidentifiedImageError:
        raise ValidationError(
            _("This file is not a photo we can read; please send a %(accepted)s photo.") % {"accepted": ACCEPTED_HUMAN},
            code="unsupported_type",
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ValidationError(_("The photo could not be read (damaged or incomplete file: %(error)s).") % {
            "error": exc}, code="corrupt") from None
    return PhotoInfo(
        data=data,
        format=img.format,
        width=width,
        height=height,
        gps=gps_from_exif(exif),
        image=oriented,
    )


def _to_float(value) -> float:
    if isinstance(value, tuple) and len(value) == 2:  # (numerator, denominator)
        return float(Fraction(int(value[0]), int(value[1]))) if value[1] else float("nan")
    return float(value)


def _dms(values) -> float:
    d, m, s = (_to_float(v) for v in values)
    return d + m / 60.0 + s / 3600.0


def gps_from_exif(exif: Image.Exif) -> tuple[float, float] | None:
    """(latitude, longitude) from an EXIF GPS IFD, or None when absent, zero or malformed."""
    try:
        gps = exif.get_ifd(GPS_IFD)
    except Exception:  # malformed IFD offsets
        return None
    try:
        lat, lon = _dms(gps[2]), _dms(gps[4])
        if str(gps.get(1, "N")).strip().upper().startswith("S"):
            lat = -lat
        if str(gps.get(3, "E")).strip().upper().startswith("W"):
            lon = -lon
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if not (np.isfinite(lat) and np.isfinite(lon)) or (lat == 0 and lon == 0):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def _clean_jpeg(img: Image.Image, max_side: int, quality: int) -> bytes:
    """Re-encode as a fresh JPEG: new pixel buffer, no EXIF/XMP/ICC/comments."""
    img = img.copy()
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    clean = Image.new("RGB", img.size)
    clean.paste(img)
    out = io.BytesIO()
    clean.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
    return out.getvalue()


def public_derivative(info: PhotoInfo) -> bytes:
    return _clean_jpeg(info.image, settings.PUBLIC_PHOTO_MAX_SIDE, quality=85)


def thumbnail(info: PhotoInfo) -> bytes:
    return _clean_jpeg(info.image, settings.THUMBNAIL_MAX_SIDE, quality=80)


def training_copy(info: PhotoInfo) -> bytes:
    """Full size, oriented, metadata-free JPEG (quality 95): how a training example is kept."""
    full = read_photo(info.data, full_size=True)
    return _clean_jpeg(full.image, max(full.width, full.height), quality=95)


def difference_hash(img: Image.Image) -> str:
    """64-bit dHash (hex). Near-identical photos differ in a few bits.

    Ten lines of Pillow + numpy, so not worth `imagehash` and its SciPy /
    PyWavelets dependencies in the web process.
    """
    small = np.asarray(img.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")
