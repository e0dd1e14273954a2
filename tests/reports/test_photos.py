"""Intake decodes big photos at reduced scale: the size on record and the training copy stay full."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from PIL import Image

from reports import photos
from tests import images


@pytest.mark.parametrize("encode", [images.jpeg, images.png], ids=["jpeg", "png"])
def test_a_big_photo_is_decoded_reduced_but_recorded_at_full_size(settings, encode):
    settings.PUBLIC_PHOTO_MAX_SIDE = 400
    info = photos.read_photo(encode(size=(2400, 1200)))
    assert (info.width, info.height) == (2400, 1200)
    assert max(info.image.size) == 400 and info.image.mode == "RGB"
    assert Image.open(io.BytesIO(photos.public_derivative(info))).size == (400, 200)
    assert Image.open(io.BytesIO(photos.training_copy(info))).size == (2400, 1200)


def test_a_sideways_photo_reports_its_displayed_size_after_reduction(settings):
    settings.PUBLIC_PHOTO_MAX_SIDE = 300
    info = photos.read_photo(images.jpeg(size=(1200, 900), orientation=6))
    assert (info.width, info.height) == (900, 1200)
    assert info.image.size == (225, 300)


def test_a_truncated_big_jpeg_is_still_rejected(settings):
    settings.PUBLIC_PHOTO_MAX_SIDE = 200
    data = images.jpeg(size=(1600, 1200))
    with pytest.raises(ValidationError) as err:
        photos.read_photo(data[: len(data) // 2])
    assert err.value.code == "corrupt"


def test_upload_memory_benchmark_runs_on_a_small_photo(tmp_path):
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "upload_memory.py"
    out = subprocess.run([sys.executable, str(script), "--megapixels", "0.5", "--work", str(tmp_path)],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.count("reduced (served)") == 2 and out.count("full size (baseline)") == 2
