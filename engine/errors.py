"""Errors meant for users: a sentence saying what failed and where, plus a hint saying what to do.

The runner turns a UserError into `finished: failed` with error {type, message, hint}; any other
exception is a programming error whose traceback goes to engine.log.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure the user can fix: bad input file, empty corpus, missing tokenizer, out of memory."""

    type = "user_error"

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint


class DataError(UserError):
    type = "data_error"


class TokenizerError(UserError):
    type = "tokenizer_error"


class ResourceError(UserError):
    type = "resource_error"


class ModelError(UserError):
    type = "model_error"
