"""The machine: devices, precision, ``torch.compile``, throughput (:mod:`~cmtutor.hardware.accel`) and DDP
under ``torchrun`` (:mod:`~cmtutor.hardware.distributed`)."""
