"""Image data: the built-in sets, ``.npz`` files, scaling to [-1, 1], batches, noise and sample grids.

Sources (``--data`` on the command line):

* ``digits``: scikit-learn's bundled 8×8 handwritten digits (1,797 images, 16 grey levels; no download).
  8 is already a power of two, so the images are used at their own size, one channel.
* ``photos``: 16×16 colour patches of the two photographs that ship with scikit-learn (a temple in China
  and a flower), shrunk 4× first so a patch shows a structure, not a flat texture (:func:`photos_split`).
* ``cifar10``: CIFAR-10 from ``<data root>/cifar10`` (see :mod:`cmtutor.data.cifar10`); held-out = test batch.
* a folder or ``.tar.gz`` in the CIFAR-10 python format (e.g. a labelled stand-in, see :mod:`cmtutor.data.cifar10`);
* a ``.npz`` file with ``images``: uint8 [N, H, W, C], C ∈ {1, 3}, square, H a power of two ≥ 8.

Every source is kept as uint8 [N, H, W, C] in memory (CIFAR-10 is 150 MB that way) and mapped to the
models' space by :class:`ImageScaler`, x = u/127.5 − 1 ∈ [−1, 1], the range the papers' σ_d = 0.5 and
σ_max = 80 are tuned for (``cmtutor.config.IMAGE_NOISE``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cmtutor.data.cifar10 import is_cifar10_path, load_cifar10
from cmtutor.errors import DataError

#: Built-in image sets (``cifar10`` is read from disk, see :mod:`cmtutor.data.cifar10`).
IMAGE_SETS: tuple[str, ...] = ("digits", "photos", "cifar10")
#: Per-chunk noise size: image i's unit noise is drawn in chunk i // NOISE_CHUNK (see :func:`image_noise`).
NOISE_CHUNK = 1000


@dataclass
class ImageData:
    """An image set: uint8 [N, H, W, C] training and held-out images, and a note for stand-ins."""

    name: str
    train: np.ndarray
    heldout: np.ndarray
    #: where the held-out images come from (e.g. "test batch")
    heldout_split: str = "held-out"
    #: empty for real data; otherwise what a stand-in is (printed wherever results are reported)
    note: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W): the shape of one image as the networks see it."""
        _, h, w, c = self.train.shape
        return (int(c), int(h), int(w))

    @property
    def dim(self) -> tuple[int, int, int]:
        return self.shape


def is_image_source(name_or_file: str) -> bool:
    """True for a built-in image set, an ``.npz`` file, or a CIFAR-10-format folder or tarball."""
    return name_or_file in IMAGE_SETS or name_or_file.endswith(".npz") or is_cifar10_path(name_or_file)


def _split(images: np.ndarray, seed: int, max_held: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(len(images))
    n_held = min(len(images) // 5, max_held)
    return images[perm[n_held:]], images[perm[:n_held]]


def digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits as uint8 [1797, 8, 8, 1] (grey levels 0…16 → 0…255) and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, d.target.astype(np.int64)


def digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, held-out images, held-out labels): a fixed 80/20 split of the digits."""
    images, labels = digits_uint8()
    perm = np.random.default_rng(seed).permutation(len(images))
    n_held = len(images) // 5
    held, train = perm[:n_held], perm[n_held:]
    return images[train], labels[train], images[held], labels[held]


#: ``photos``: shrink factor, patch side, patch stride
PHOTOS_SHRINK, PHOTOS_SIDE, PHOTOS_STRIDE = 4, 16, 2
#: ``photos``: each photo is cut into rows × columns regions that label its patches for the FD classifier
PHOTOS_REGIONS = (4, 5)


def photos_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train, train labels, reference, reference labels) of ``photos``: uint8 [N, 16, 16, 3] patches.

    Each of scikit-learn's two sample photographs (427×640) is shrunk 4× by averaging 4×4 blocks (106×160),
    and every 16×16 patch at stride 2 is an image (2 × 46 × 73 = 6,716). A fixed random 20 % is the reference
    set the quality distance compares with; the rest trains. Neighbouring patches overlap, so the reference
    is not held out in the strict sense: like CIFAR-10's FID, computed against the training images, it
    measures sample quality, not generalisation. A patch's label is its photo and region (2 × 4 × 5 = 40
    classes), used only by the FD classifier (``cmtutor.evaluation.photos_fd``).
    """
    from sklearn.datasets import load_sample_images

    s, st = PHOTOS_SIDE, PHOTOS_STRIDE
    rows, cols = PHOTOS_REGIONS
    images, labels = [], []
    for i, img in enumerate(load_sample_images().images):
        f = PHOTOS_SHRINK
        h, w = img.shape[0] // f * f, img.shape[1] // f * f
        small = np.round(img[:h, :w].reshape(h // f, f, w // f, f, 3).astype(np.float64).mean(axis=(1, 3)))
        small = small.astype(np.uint8)
        for r in range(0, small.shape[0] - s + 1, st):
            for c in range(0, small.shape[1] - s + 1, st):
                images.append(small[r:r + s, c:c + s])
                region = ((r + s // 2) * rows // small.shape[0]) * cols + (c + s // 2) * cols // small.shape[1]
                labels.append(i * rows * cols + region)
    x, y = np.stack(images), np.array(labels, np.int64)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_ref = len(x) // 5
    return x[perm[n_ref:]], y[perm[n_ref:]], x[perm[:n_ref]], y[perm[:n_ref]]


def read_image_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Read and validate a ``.npz`` file's ``images`` (uint8 [N, H, W, C]); :class:`DataError` if unusable."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as f:
            if "images" not in f:
                raise DataError(f"{p}: no 'images' array (found: {', '.join(f.files) or 'nothing'}); "
                                "save uint8 images [N, H, W, C] under the key 'images'")
            arr = f["images"]
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{p}: not a readable .npz file ({exc.__class__.__name__}: {exc})") from None
    if arr.dtype != np.uint8:
        raise DataError(f"{p}: 'images' must be uint8 (0…255), got dtype {arr.dtype}")
    if arr.ndim != 4 or arr.shape[3] not in (1, 3):
        raise DataError(f"{p}: 'images' must have shape [N, H, W, C] with C = 1 or 3, got {arr.shape}")
    n, h, w, _ = arr.shape
    if h != w or h < 8 or h & (h - 1):
        raise DataError(f"{p}: images must be square with a power-of-two side of at least 8, got {h}×{w}")
    if n < 10:
        raise DataError(f"{p}: only {n} images; at least 10 are needed")
    return arr


def load_images(name_or_file: str, seed: int = 0) -> ImageData:
    """Load an image source (see the module docstring) with its held-out split."""
    if name_or_file == "digits":
        tr, _, he, _ = digits_split(seed)
        return ImageData("digits", tr, he, "held-out 20% of the digits")
    if name_or_file == "photos":
        tr, _, he, _ = photos_split()  # one fixed split for every seed: the quality reference never trains
        return ImageData("photos", tr, he, "a random 20% of the patches")
    if name_or_file == "cifar10" or is_cifar10_path(name_or_file):
        c = load_cifar10(None if name_or_file == "cifar10" else name_or_file)
        name = "cifar10" if not c.is_standin else f"cifar10-format stand-in ({Path(name_or_file).name})"
        return ImageData(name, c.train, c.test, "test batch", c.standin_note)
    if name_or_file.endswith(".npz"):
        tr, he = _split(read_image_file(name_or_file), seed)
        return ImageData(Path(name_or_file).name, tr, he, "held-out 20% of the file")
    raise DataError(f"unknown image data {name_or_file!r}; built-in: {', '.join(IMAGE_SETS)} "
                    "(or an .npz file with uint8 'images' [N, H, W, C])")


# --- scaling ---------------------------------------------------------------------------------------

@dataclass
class ImageScaler:
    """Pixel values u ∈ [0, 255] ↔ model space x = u/127.5 − 1 ∈ [−1, 1] (the papers' convention).

    It plays the role :class:`cmtutor.data.Standardizer` plays for vectors (``encode``/``decode``,
    stored in checkpoints), but is fixed rather than fitted: images have a known range.
    """

    def encode(self, u: Tensor) -> Tensor:
        return u.float() / 127.5 - 1.0 if u.dtype == torch.uint8 else u / 127.5 - 1.0

    def decode(self, x: Tensor) -> Tensor:
        """Model space → pixel values (float, not rounded or clipped; see :func:`to_uint8`)."""
        return (x + 1.0) * 127.5

    def to_dict(self) -> dict[str, object]:
        return {"kind": "image", "range": [-1.0, 1.0]}


def to_uint8(pixels: Tensor | np.ndarray) -> np.ndarray:
    """Float pixel values [N, C, H, W] → uint8 [N, H, W, C] (rounded and clipped to 0…255)."""
    x = pixels.detach().float().cpu().numpy() if isinstance(pixels, Tensor) else np.asarray(pixels, np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def images_to_tensor(images: np.ndarray) -> Tensor:
    """uint8 [N, H, W, C] → uint8 tensor [N, C, H, W] (contiguous)."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def image_batch(train_u8: Tensor, batch: int, xflip: bool = False, channels_last: bool = False) -> Tensor:
    """Draw a training batch from uint8 images [N, C, H, W] on their device, scaled to [−1, 1].

    Indices are drawn with replacement (as for vectors); ``xflip`` mirrors each image with probability
    ½ (the CIFAR-10 augmentation of the CM code). Uses the device's default RNG, which checkpoints save.
    """
    idx = torch.randint(0, train_u8.shape[0], (batch,), device=train_u8.device)
    x = train_u8[idx].float() / 127.5 - 1.0
    if xflip:
        flip = torch.rand(batch, device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def image_noise(start: int, count: int, shape: tuple[int, ...], seed: int) -> Tensor:
    """Unit noise of images ``start`` … ``start + count − 1`` of a sample drawn with ``seed`` (CPU).

    Image i's noise is row i % NOISE_CHUNK of a full chunk drawn from a generator seeded with
    (seed, i // NOISE_CHUNK), so it does not depend on how many images are drawn or in what batches:
    the first 10 images of a 50,000-image sample equal a 10-image sample with the same seed.
    """
    out = []
    i = start
    while i < start + count:
        chunk = i // NOISE_CHUNK
        gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + chunk)
        z = torch.randn((NOISE_CHUNK, *shape), generator=gen)
        lo = i - chunk * NOISE_CHUNK
        hi = min(NOISE_CHUNK, lo + start + count - i)
        out.append(z[lo:hi])
        i += hi - lo
    return torch.cat(out) if out else torch.empty((0, *shape))


def grid(images: np.ndarray, ncols: int = 8, pad: int = 1) -> np.ndarray:
    """Tile uint8 images [N, H, W, C] into one uint8 image [rows·(H+pad)+pad, cols·(W+pad)+pad, C]."""
    n, h, w, c = images.shape
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    out = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), 255, np.uint8)
    for k in range(n):
        r, q = divmod(k, ncols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = images[k]
    return out


def save_grid(images: np.ndarray, path: str | os.PathLike[str], ncols: int = 8, scale: int = 1) -> None:
    """Write a grid of uint8 images [N, H, W, C] as a PNG (nearest-neighbour upscaled by ``scale``)."""
    from PIL import Image

    g = grid(images, ncols)
    if scale > 1:
        g = g.repeat(scale, 0).repeat(scale, 1)
    img = Image.fromarray(g[..., 0] if g.shape[2] == 1 else g)
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    img.save(tmp)
    os.replace(tmp, path)


def describe(data: ImageData) -> dict[str, Any]:
    """A short record of an image set (for logs and the FID protocol)."""
    c, h, w = data.shape
    out: dict[str, Any] = {"data": data.name, "train": int(len(data.train)), "heldout": int(len(data.heldout)),
                           "shape": [h, w, c]}
    if data.note:
        out["note"] = data.note
    return out
