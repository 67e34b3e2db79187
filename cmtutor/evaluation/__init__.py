"""Evaluation: FID through clean-fid (:mod:`~cmtutor.evaluation.fid`), FD-digits
(:mod:`~cmtutor.evaluation.digits_fd`), and the reports of ``python -m cmtutor evaluate``
(:mod:`~cmtutor.evaluation.reports`)."""
