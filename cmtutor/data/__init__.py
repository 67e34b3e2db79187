"""Data: 2D sets and ``.npy`` files (:mod:`~cmtutor.data.vectors`), images (:mod:`~cmtutor.data.images`),
CIFAR-10 (:mod:`~cmtutor.data.cifar10`), one entry point for all (:mod:`~cmtutor.data.sources`) and where
data lives (:mod:`~cmtutor.data.root`)."""
