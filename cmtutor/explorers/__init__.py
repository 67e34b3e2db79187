"""Interactive explorers of the course (ipywidgets), one per topic, each with a static companion figure.

==============================  ========  ==================================================================
explorer                        notebook  what the controls move
==============================  ========  ==================================================================
:func:`ode_paths`               01        σ of the forward process; the ODE path of a chosen point; Euler
                                          vs Heun; the number of steps
:func:`consistency_sampling`    02/03     one-step vs K-step sampling of two models side by side (CD vs CT)
:func:`run_grid`                03/05     a grid of trained runs: the CT → iCT variants × the sampling EMA
                                          decay; the TCM variants
:func:`discretisation`          03        the grid size N of CT/iCT and where a pair sits: bias, step and
                                          noise of CT's target against the exact ODE (nothing trained)
:func:`couplings`               04        the coupling (independent, minibatch OT, GC), μ and σ_i: the drawn
                                          pairs and the transport cost
:func:`truncation`              05        t' and w_b of TCM: the stored 3-seed study, and samples of the
                                          runs the notebook trained (a stage-2 run per setting is too slow)
:func:`ode_error`               06        CD vs Direct CM: the ODE error beside the samples
==============================  ========  ==================================================================

Moving a control never trains a model: an explorer takes models that the notebook trained (or loaded from
the cache) earlier, computes what it shows when it is built, and only re-draws afterwards. In a notebook::

    from cmtutor import explorers
    explorers.ode_paths(teacher).show()   # the live explorer, and under it the static figure

``show()`` displays the widget and its static figure (a few fixed settings), so the notebook read on the
code host shows the figure, and nbval compares only the explorer's fixed one-line text form.
"""

from cmtutor.explorers import truncated
from cmtutor.explorers.base import Explorer
from cmtutor.explorers.consistency import consistency_sampling, run_grid
from cmtutor.explorers.coupling import couplings, default_couplings, generator_coupling, independent, minibatch_ot
from cmtutor.explorers.discretisation import discretisation
from cmtutor.explorers.ode import ode_paths
from cmtutor.explorers.ode_error import ode_error
from cmtutor.explorers.truncated import truncation

__all__ = ["Explorer", "consistency_sampling", "couplings", "default_couplings", "discretisation",
           "generator_coupling", "independent", "minibatch_ot", "ode_error", "ode_paths", "run_grid", "truncation"]
