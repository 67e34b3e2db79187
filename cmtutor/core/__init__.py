"""The math every method is built from: noise levels, preconditioning, schedules, losses, PF-ODE solvers and
consistency sampling steps, EMAs, metrics, and the exact denoiser of a finite data set. Depends on nothing
else in cmtutor but :mod:`cmtutor.errors`."""
