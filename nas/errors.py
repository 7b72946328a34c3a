"""Errors a user can act on. The CLI prints them as one line, without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (path, file content, option, constraint): say what was expected."""


class SpaceError(UserError, ValueError):
    """A search-space file or an architecture does not fit the schema."""


class IncompatibleFileError(UserError, ValueError):
    """A checkpoint, table or predictor made for another space, device or format."""


class DataError(UserError, ValueError):
    """A data set path, layout or array content that does not fit what the loader expects."""
