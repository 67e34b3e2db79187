"""FD-photos: the Fréchet distance on a small classifier's features for the ``photos`` patches (not an FID).

:class:`cmtutor.evaluation.classifier_fd.ClassifierFD` on the 16×16 colour patches of
:func:`cmtutor.data.images.photos_split`; the classifier tells the photo and the region a patch comes
from (40 classes), so its features see colour, texture and edges.
"""

from __future__ import annotations

from typing import Any

from cmtutor.data.images import photos_split
from cmtutor.evaluation.classifier_fd import ClassifierFD

#: Classifier training settings (part of the cache key).
CLASSIFIER_SETTINGS: dict[str, Any] = {"steps": 600, "batch": 64, "lr": 2e-3, "seed": 0, "width": 16, "feat": 64,
                                       "version": 2}
PHOTOS = ClassifierFD("photos", "FD-photos", photos_split, "the photo and region of a patch (40 classes)",
                      f"a random 20% of the patches ({len(photos_split()[2])} images; they overlap training patches)", CLASSIFIER_SETTINGS)
