"""Training: a run in memory (:mod:`~cmtutor.training.run`), the loop (:mod:`~cmtutor.training.loop`), its
checkpoints and resume (:mod:`~cmtutor.training.resume`), and the command line's run folder
(:mod:`~cmtutor.training.rundir`). Modules inside this package import each other by module, never from here.
"""

from cmtutor.training.loop import fit, step, to_floats, train_steps
from cmtutor.training.resume import checkpoint_dict, resume_run, save_checkpoint
from cmtutor.training.run import Run, build_run

__all__ = ["Run", "build_run", "checkpoint_dict", "fit", "resume_run", "save_checkpoint", "step", "to_floats",
           "train_steps"]
