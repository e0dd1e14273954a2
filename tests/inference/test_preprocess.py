"""inference/preprocess.py: reduced-scale decode, EXIF orientation, HEIC, normalisation."""
import io

import numpy as np
import pytest
from PIL import Image

from inference.preprocess import PreprocessSpec, decode, preprocess, to_array

SPEC = PreprocessSpec()  # 224 crop of a 256 resize
T = Image.Transpose
# EXIF orientation -> how the camera stored the pixels of an upright scene
# (the inverse of what a viewer applies), derived from the EXIF spec's
# "row 0 / column 0" table rather than from Pillow's own mapping.
STORED = {
    1: None,
    2: T.FLIP_LEFT_RIGHT,
    3: T.ROTATE_180,
    4: T.FLIP_TOP_BOTTOM,
    5: T.TRANSPOSE,
    6: T.ROTATE_90,  # viewer turns it 90 degrees clockwise, so it was stored turned counter-clockwise
    7: T.TRANSVERSE,
    8: T.ROTATE_270,
}
QUADRANTS = {"top_left": (230, 30, 30), "top_right": (30, 200, 30), "bottom_left": (30, 30, 220), "bottom_right": (240, 240, 240)}


def upright_scene(size=(1600, 1200)) -> Image.Image:
    """Landscape image with a distinct colour in each quadrant."""
    w, h = size
    img = Image.new("RGB", size)
    img.paste(QUADRANTS["top_left"], (0, 0, w // 2, h // 2))
    img.paste(QUADRANTS["top_right"], (w // 2, 0, w, h // 2))
    img.paste(QUADRANTS["bottom_left"], (0, h // 2, w // 2, h))
    img.paste(QUADRANTS["bottom_right"], (w // 2, h // 2, w, h))
    return img


def camera_jpeg(orientation: int, size=(1600, 1200)) -> bytes:
    """JPEG bytes as a camera writes them: rotated pixels + EXIF orientation tag."""
    stored = upright_scene(size)
    if STORED[orientation] is not None:
        stored = stored.transpose(STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def assert_upright(img: Image.Image) -> None:
    w, h = img.size
    assert w > h, f"expected landscape, got {img.size}"
    points = {"top_left": (w // 4, h // 4), "top_right": (3 * w // 4, h // 4),
              "bottom_left": (w // 4, 3 * h // 4), "bottom_right": (3 * w // 4, 3 * h // 4)}
    for name, xy in points.items():
        assert np.abs(np.subtract(img.getpixel(xy), QUADRANTS[name])).max() <= 12, name


@pytest.mark.parametrize("orientation", sorted(STORED))
@pytest.mark.parametrize("fast", [True, False], ids=["reduced-scale", "full"])
def test_exif_orientation_is_applied(orientation, fast):
    img = decode(camera_jpeg(orientation), draft_for=SPEC if fast else None)
    assert img.mode == "RGB"
    assert_upright(img)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((4032, 3024), (504, 378)),  # 12 MP phone photo: 1/8 scale
        ((3024, 4032), (378, 504)),  # portrait
        ((2100, 513), (1050, 257)),  # panorama: the short side limits the scale to 1/2
        ((1000, 700), (500, 350)),
        ((511, 511), (511, 511)),  # too small to reduce at all
        ((256, 300), (256, 300)),
    ],
)
def test_reduced_scale_decode_keeps_the_shorter_side_at_least_resize_size(size, expected):
    out = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(out, "JPEG", quality=85)
    img = decode(out.getvalue(), draft_for=SPEC)
    assert img.size == expected
    assert min(img.size) >= SPEC.resize_size


def test_reduced_scale_preprocessing_stays_close_to_full_decode():
    """Draft decoding changes the pixels a little, never the framing or orientation."""
    rng = np.random.default_rng(0)
    smooth = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).resize((4032, 3024), Image.Resampling.BICUBIC)
    stored = smooth.transpose(T.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=90, exif=exif.tobytes())
    fast = preprocess(out.getvalue(), SPEC)
    full = preprocess(out.getvalue(), SPEC, fast_decode=False)
    assert fast.shape == full.shape == (3, 224, 224)
    assert np.abs(fast - full).mean() < 0.02  # normalised units: [-1, 1] spans 2.0


def test_heic_is_decoded_upright_from_its_orientation():
    import pillow_heif

    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    upright_scene((640, 480)).transpose(STORED[6]).save(out, "HEIF", quality=90, exif=exif.tobytes())
    img = decode(out.getvalue(), draft_for=SPEC)
    assert img.size == (640, 480)
    assert_upright(img)
    assert preprocess(out.getvalue(), SPEC).shape == (3, 224, 224)


def test_a_pil_image_passed_in_is_not_modified():
    stored = upright_scene().transpose(STORED[6])
    original = Image.open(io.BytesIO(camera_jpeg(6)))
    original.load()
    before = original.tobytes()
    assert_upright(decode(original))
    assert original.size == stored.size and original.tobytes() == before
    assert original.getexif()[0x0112] == 6


def test_serving_and_training_preprocessing_agree_on_a_decoded_image():
    """Training's eval transform is preprocess(..., fast_decode=False); on a decoded image it is the same."""
    img = decode(camera_jpeg(3))
    np.testing.assert_array_equal(preprocess(img, SPEC), preprocess(img, SPEC, fast_decode=False))


def test_to_array_normalises_with_the_spec_mean_and_std():
    spec = PreprocessSpec(input_size=2, resize_size=2, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    pixels = np.array([[[0, 128, 255], [10, 20, 30]], [[255, 255, 255], [1, 2, 3]]], dtype=np.uint8)
    arr = to_array(Image.fromarray(pixels), spec)
    expected = ((pixels / 255.0 - np.array(spec.mean)) / np.array(spec.std)).transpose(2, 0, 1)
    assert arr.dtype == np.float32 and arr.flags.c_contiguous and arr.shape == (3, 2, 2)
    np.testing.assert_allclose(arr, expected, atol=1e-6)
