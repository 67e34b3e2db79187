"""Errors that mean "the user's input is wrong" (exit code 2 on the command line, one clear line)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a missing or malformed file, an unknown name, a mismatched checkpoint.

    The command line prints ``error: <message>`` on stderr and exits with code 2, with no traceback.
    The message must say what is wrong and, where it can, what to do instead.
    """


class DataError(UserError):
    """A data set cannot be found, read or used."""


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable, or belongs to another method."""
