"""Moved to :mod:`inference.preprocess`; this name stays while callers move over."""
from inference.preprocess import (  # noqa: F401
    IMAGE_SUFFIXES,
    INTERPOLATIONS,
    PreprocessSpec,
    decode,
    preprocess,
    register_heif_opener,
    resize_crop,
    to_array,
)

register_heif_opener()  # reports/photos.py imports this module for the HEIF opener
