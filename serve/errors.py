"""The serving error taxonomy and the one place that maps it to HTTP status codes.

Views and codecs raise these; ``app.py`` turns them into a short JSON body with ``status_for``. Anything
else that escapes is a server fault: logged with its traceback, answered with a generic 500.
"""

from __future__ import annotations


class ServeError(Exception):
    """Base class: ``str(exc)`` is safe to show the client (what went wrong and how to fix it)."""


class BadRequest(ServeError):
    """The body cannot be decoded, or decodes to something the model cannot take (shape, NaN, size)."""


class ResponseTooLarge(BadRequest):
    """The answer would exceed the endpoint's response limit (SageMaker real-time: 6 MB)."""


class UnsupportedMediaType(ServeError):
    """The request's Content-Type is not one we decode."""


class NotAcceptable(ServeError):
    """No type in the request's Accept header can hold this response."""


class PayloadTooLarge(ServeError):
    """The body is over the configured payload limit."""


class NotReady(ServeError):
    """The model is still loading or failed to load."""


class Overloaded(ServeError):
    """The prediction did not finish within the request timeout; retrying later may succeed."""


class NotFound(ServeError):
    """No such route."""


class MethodNotAllowed(ServeError):
    """The route exists but not for this HTTP method."""


_STATUS: dict[type[ServeError], int] = {
    BadRequest: 400,
    NotFound: 404,
    MethodNotAllowed: 405,
    NotAcceptable: 406,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    NotReady: 503,
    Overloaded: 503,
}


def status_for(exc: BaseException) -> int:
    """HTTP status for an exception: the taxonomy's code, 500 for anything outside it."""
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500
