"""The errors Marconi's functions raise when a request cannot be answered, each with its HTTP status.

Domain code (recommenders, image search, fetch, importers) raises these; it never imports Flask. The API turns
every one of them into ``{"error": message, "status": status, "code": code, ...details}`` in one place
(``marconi.api.errors``), and the CLI prints the message. Subclass the one whose status fits.
"""

from __future__ import annotations


class MarconiError(Exception):
    """A failure to report to the user: ``message`` says what to do next; ``status`` is the HTTP status to use."""

    status = 500
    code = "error"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, **details):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details

    def to_dict(self) -> dict:
        """Return the JSON body of this error (None-valued details left out)."""
        body = {"error": self.message, "status": self.status, "code": self.code}
        body.update({k: v for k, v in self.details.items() if v is not None})
        return body


class BadRequest(MarconiError):
    """The request is malformed or a parameter is out of range."""

    status = 400
    code = "bad_request"


class Forbidden(MarconiError):
    """The request asks for something this server is configured not to do."""

    status = 403
    code = "forbidden"


class NotFound(MarconiError):
    """The thing asked for does not exist."""

    status = 404
    code = "not_found"


class Conflict(MarconiError):
    """The request cannot be answered in the current state (e.g. the serving model lacks something)."""

    status = 409
    code = "conflict"


class TooLarge(MarconiError):
    """The input is larger than the configured limits."""

    status = 413
    code = "too_large"


class UnsupportedMedia(MarconiError):
    """The input's format is not one Marconi reads."""

    status = 415
    code = "unsupported_format"


class Unprocessable(MarconiError):
    """The request is well formed but its content could not be used (e.g. a URL that could not be fetched)."""

    status = 422
    code = "unprocessable"


class Unavailable(MarconiError):
    """A dependency is missing or down (no model serving, database unreachable): try again later."""

    status = 503
    code = "unavailable"
