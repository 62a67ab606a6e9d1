"""The project's exceptions.

Every failure a user can cause or meet is one of these, with a message that names the bad
value, the rule it broke and what to do. The CLI maps them to exit codes: usage mistakes
(bad options, unusable input files) exit 2, runtime failures exit 1.
"""

from __future__ import annotations


class VidlatentError(Exception):
    """Base of all vidlatent errors; a runtime failure (exit status 1)."""

    exit_code = 1


class UsageError(VidlatentError):
    """An option or argument the user gave cannot be used (exit status 2)."""

    exit_code = 2


class InputError(UsageError):
    """An input file is missing, unreadable or malformed (exit status 2)."""


class LatentFileError(InputError):
    """A latent file breaks the format contract (see docs/latent-format.md)."""


class IncompatibleLatentsError(UsageError):
    """A latent clip belongs to a different latent space than the model or clip it meets."""


class MediaError(InputError):
    """An image or video cannot be read."""


class OutputError(VidlatentError):
    """An output cannot be written (exit status 1)."""


class ModelError(VidlatentError):
    """A model cannot be found or loaded (exit status 1)."""


class Note(UserWarning):
    """Something the user should know that is not an error (a video that ended early); the
    CLI prints it as one ``vidlatent: note:`` line on stderr."""
