"""CIFAR-10 in its official python format: find it, verify it, download it where the network allows.

The official archive ``cifar-10-python.tar.gz`` (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html)
holds ``cifar-10-batches-py/`` with ``data_batch_1`` … ``data_batch_5`` (50,000 training images),
``test_batch`` (10,000) and ``batches.meta``. Each batch is a pickled dict with ``b"data"`` (uint8
[10000, 3072], each row the red, green and blue 32×32 planes in row-major order), ``b"labels"``,
``b"batch_label"`` and ``b"filenames"``.

cmtutor reads ``<data root>/cifar10/`` (``datasets/cifar10/`` or ``$CMTUTOR_DATA/cifar10/``): the
extracted folder or the tarball (extracted there on first use). Every file is checked against its MD5
checksum before it is read. If nothing is there, the tarball is downloaded from the official address
when the network allows (set ``CMTUTOR_OFFLINE=1`` to never try); otherwise :class:`DataError` says
exactly which files to put where (exit code 2 on the command line). There is never a silent stand-in.

Small files in the exact same format (written by tests and by notebook 08 with
:func:`write_cifar10_format`) carry a manifest, ``cmtutor-standin.json``, holding their own checksums
and a note saying what they are. The reader verifies such a folder against its manifest instead of the
official table and labels the data as a stand-in everywhere it is reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmtutor.data.root import data_root
from cmtutor.errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
TARBALL = "cifar-10-python.tar.gz"
TARBALL_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
#: The official MD5 checksums of the extracted batches (the same table torchvision uses).
OFFICIAL_MD5: dict[str, str] = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: The manifest that marks a folder as a stand-in written in the CIFAR-10 format (not CIFAR-10).
STANDIN_MANIFEST = "cmtutor-standin.json"


@dataclass
class Cifar10:
    """CIFAR-10 (or a labelled stand-in in its format): uint8 images [N, 32, 32, 3] and labels."""

    train: np.ndarray
    train_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    folder: Path
    #: empty for the official data; otherwise what the stand-in is (from its manifest)
    standin_note: str = ""

    @property
    def is_standin(self) -> bool:
        return bool(self.standin_note)


def md5sum(path: str | os.PathLike[str]) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_root() -> Path:
    """``<data root>/cifar10`` (see :func:`cmtutor.data.data_root`)."""
    return data_root() / "cifar10"


def missing_message(root: Path, reason: str = "") -> str:
    """The one-line instruction printed when CIFAR-10 cannot be found or fetched."""
    why = f" ({reason})" if reason else ""
    return (f"CIFAR-10 was not found in {root}{why}. Download {TARBALL} (md5 {TARBALL_MD5}) from {URL} and "
            f"put it in {root}/, or put its extracted folder there as {root}/{FOLDER}/ with "
            f"{', '.join(TRAIN_FILES + TEST_FILES)} and batches.meta")


def batch_to_images(data: np.ndarray) -> np.ndarray:
    """Rows of a CIFAR-10 batch (uint8 [N, 3072], channel planes in row-major order) → uint8 [N, 32, 32, 3]."""
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def images_to_batch(images: np.ndarray) -> np.ndarray:
    """The inverse of :func:`batch_to_images`: uint8 [N, 32, 32, 3] → [N, 3072]."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), 3072))


def _find_folder(root: Path) -> Path | None:
    """The batches folder under ``root`` (``root/cifar-10-batches-py`` or ``root`` itself), or None."""
    for cand in (root / FOLDER, root):
        if (cand / TRAIN_FILES[0]).exists() or (cand / STANDIN_MANIFEST).exists():
            return cand
    return None


def _extract(tarball: Path, root: Path, expected_md5: str | None) -> Path:
    if expected_md5 is not None:
        got = md5sum(tarball)
        if got != expected_md5:
            raise DataError(f"{tarball}: checksum mismatch (md5 {got}, expected {expected_md5}): the archive is "
                            f"corrupt or incomplete; delete it and download it again from {URL}")
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            try:
                tar.extractall(root, filter="data")
            except TypeError:  # Python without extraction filters
                tar.extractall(root)  # noqa: S202 (checksum verified above)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{tarball}: cannot extract the archive ({exc.__class__.__name__}: {exc}); delete it "
                        f"and download it again from {URL}") from None
    folder = _find_folder(root)
    if folder is None:
        raise DataError(f"{tarball} does not contain {FOLDER}/; it is not the CIFAR-10 python archive ({URL})")
    return folder


def download(root: Path, timeout: float = 30.0) -> Path:
    """Download and verify the official tarball into ``root``; :class:`DataError` with instructions on failure."""
    if os.environ.get("CMTUTOR_OFFLINE"):
        raise DataError(missing_message(root, "downloads are off: CMTUTOR_OFFLINE is set"))
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{TARBALL}.", dir=root)
        try:
            with os.fdopen(fd, "wb") as fh, urllib.request.urlopen(URL, timeout=timeout) as resp:
                shutil.copyfileobj(resp, fh)
            got = md5sum(tmp)
            if got != TARBALL_MD5:
                raise DataError(missing_message(root, f"the download's md5 is {got}, not {TARBALL_MD5}"))
            os.replace(tmp, root / TARBALL)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except DataError:
        raise
    except Exception as exc:  # no network, DNS failure, HTTP error, disk full ...
        raise DataError(missing_message(root, f"the download failed: {exc.__class__.__name__}: {exc}")) from None
    return _extract(root / TARBALL, root, TARBALL_MD5)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 32, 32, 3], labels int64 [N]) of one batch file; :class:`DataError` if unusable."""
    try:
        with open(path, "rb") as fh:
            d = pickle.load(fh, encoding="bytes")
        data = np.asarray(d[b"data"])
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except Exception as exc:  # truncated or not a pickle, or missing keys
        raise DataError(f"{path}: not a readable CIFAR-10 batch ({exc.__class__.__name__}); delete the folder and "
                        f"put the files there again (see {URL})") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{path}: expected uint8 data [N, 3072] with N labels, got {data.dtype} {data.shape} "
                        f"and {len(labels)} labels")
    return batch_to_images(data), labels


def expected_checksums(folder: Path) -> tuple[dict[str, str], str]:
    """(file → md5, stand-in note): the manifest's for a stand-in folder, else the official table."""
    manifest = folder / STANDIN_MANIFEST
    if not manifest.exists():
        return dict(OFFICIAL_MD5), ""
    try:
        m = json.loads(manifest.read_text())
        return {str(k): str(v) for k, v in m["md5"].items()}, str(m["note"])
    except Exception as exc:
        raise DataError(f"{manifest}: unreadable stand-in manifest ({exc.__class__.__name__})") from None


def load_cifar10(root: str | os.PathLike[str] | None = None, checksums: dict[str, str] | None = None,
                 allow_download: bool = True) -> Cifar10:
    """Read CIFAR-10 from ``root`` (default ``<data root>/cifar10``), verifying every file's MD5.

    ``root`` may hold the extracted folder or the tarball, or be a ``.tar.gz`` itself. ``checksums``
    overrides the expected MD5s (default: the official table, or a stand-in folder's manifest).
    """
    root = Path(root) if root is not None else default_root()
    if root.suffixes[-2:] == [".tar", ".gz"] and root.is_file():
        folder = _find_folder(root.parent) or _extract(root, root.parent, TARBALL_MD5 if checksums is None else None)
    else:
        folder = _find_folder(root)
        if folder is None and (root / TARBALL).exists():
            folder = _extract(root / TARBALL, root, TARBALL_MD5)
        if folder is None:
            if not allow_download:
                raise DataError(missing_message(root))
            folder = download(root)
    expected, note = expected_checksums(folder)
    if checksums is not None:
        expected = dict(checksums)
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in TRAIN_FILES + TEST_FILES:
        path = folder / name
        if not path.exists():
            raise DataError(missing_message(root, f"{path.name} is missing from {folder}"))
        got = md5sum(path)
        if name not in expected or got != expected[name]:
            raise DataError(f"{path}: checksum mismatch (md5 {got}, expected {expected.get(name, 'none listed')}): "
                            f"the file is corrupt, incomplete or not the official one; replace it (see {URL})")
        parts[name] = read_batch(path)
    train = np.concatenate([parts[n][0] for n in TRAIN_FILES])
    train_labels = np.concatenate([parts[n][1] for n in TRAIN_FILES])
    test, test_labels = parts[TEST_FILES[0]]
    return Cifar10(train, train_labels, test, test_labels, folder, note)


def is_cifar10_path(name: str) -> bool:
    """True for a path to a folder or tarball in the CIFAR-10 python format."""
    p = Path(name)
    if name.endswith(".tar.gz"):
        return True
    return p.is_dir() and _find_folder(p) is not None


def write_cifar10_format(root: str | os.PathLike[str], train: np.ndarray, train_labels: np.ndarray,
                         test: np.ndarray, test_labels: np.ndarray, note: str) -> Path:
    """Write images in the exact CIFAR-10 python format under ``root/cifar-10-batches-py/``.

    The training images are split over five ``data_batch_*`` files like the official ones; the folder
    gets a :data:`STANDIN_MANIFEST` with the files' MD5s and ``note`` (say plainly what the data are).
    Returns the batches folder.
    """
    if not note.strip():
        raise ValueError("a stand-in needs a note saying what it is")
    for arr in (train, test):
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (32, 32, 3):
            raise ValueError(f"expected uint8 images [N, 32, 32, 3], got {arr.dtype} {arr.shape}")
    folder = Path(root) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    chunks = np.array_split(np.arange(len(train)), len(TRAIN_FILES))
    batches = [(f"training batch {i + 1} of 5", TRAIN_FILES[i], train[c], train_labels[c]) for i, c in enumerate(chunks)]
    batches.append(("testing batch 1 of 1", TEST_FILES[0], test, test_labels))
    md5: dict[str, str] = {}
    for label, name, imgs, labels in batches:
        d = {b"batch_label": label.encode(), b"labels": [int(v) for v in labels],
             b"data": images_to_batch(imgs), b"filenames": [f"standin_{name}_{i:05d}.png".encode() for i in range(len(imgs))]}
        with open(folder / name, "wb") as fh:
            pickle.dump(d, fh, protocol=2)
        md5[name] = md5sum(folder / name)
    meta = {b"num_cases_per_batch": int(len(chunks[0])), b"label_names": [n.encode() for n in LABEL_NAMES],
            b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump(meta, fh, protocol=2)
    (folder / STANDIN_MANIFEST).write_text(json.dumps({"note": note, "md5": md5}, indent=2) + "\n")
    return folder
