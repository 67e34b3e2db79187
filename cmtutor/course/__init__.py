"""What the notebooks use beyond the library: notebook-sized configs and the shared 2D teacher
(:mod:`~cmtutor.course.toy2d`), the digits and CIFAR-10 notebooks' helpers (:mod:`~cmtutor.course.images`),
the model cache (:mod:`~cmtutor.course.cache`), the CT → iCT ablation, and plots."""
