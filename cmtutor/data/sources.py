"""One entry point for every data source: vectors (built-in 2D sets, ``.npy``) or images (``.npz``, digits,
CIFAR-10), with the matching map from raw data to model space."""

from __future__ import annotations

from typing import Any

import numpy as np

from cmtutor.data.images import IMAGE_SETS, ImageData, ImageScaler, is_image_source, load_images
from cmtutor.data.vectors import TOY_SETS, Standardizer, VectorData, is_vector_source, load_vectors
from cmtutor.errors import DataError

__all__ = ["ImageData", "VectorData", "fit_scaler", "flat_dim", "is_image_source", "is_vector_source",
           "load_data", "sample_shape", "scaler_from_dict"]


def load_data(name_or_file: str, seed: int = 0) -> Any:
    """Vector data (:class:`VectorData`) or image data (:class:`cmtutor.data.images.ImageData`) by name or file."""
    if is_vector_source(name_or_file):
        return load_vectors(name_or_file, seed)
    if is_image_source(name_or_file):
        return load_images(name_or_file, seed)
    raise DataError(f"unknown data set {name_or_file!r}; built-in 2D sets: {', '.join(TOY_SETS)}; image sets: "
                    f"{', '.join(IMAGE_SETS)} (or give a .npy file [N, D] or an .npz file with uint8 'images' "
                    "[N, H, W, C])")


def flat_dim(dim: int | tuple[int, ...]) -> int:
    """The number of coordinates of one sample (D = C·H·W for images)."""
    return int(dim) if isinstance(dim, int) else int(np.prod(dim))


def sample_shape(dim: int | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """The shape of one sample: (D,) for vectors, (C, H, W) for images."""
    return (int(dim),) if isinstance(dim, int) else tuple(int(v) for v in dim)


def fit_scaler(data: Any) -> Any:
    """The map from raw data to model space: a fitted :class:`Standardizer` (vectors) or the fixed image scaling."""
    if isinstance(data, VectorData):
        return Standardizer.fit(data.train)
    return ImageScaler()


def scaler_from_dict(d: dict[str, Any]) -> Any:
    """Rebuild the scaler stored in a checkpoint (:class:`Standardizer` or image scaling)."""
    if d.get("kind") == "image":
            return ImageScaler()
    return Standardizer.from_dict(d)
