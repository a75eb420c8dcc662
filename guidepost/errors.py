"""Domain errors: what went wrong with a request, in words a client can act on; no HTTP here."""
from __future__ import annotations


class GuidepostError(Exception):
    """A failure the client can act on; the HTTP layer maps each kind to a status (guidepost.http.errors)."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.retry_after = retry_after  # seconds a client should wait before trying again, when it should


class MalformedRequest(GuidepostError):
    """The request cannot be read: no image, not JSON, not base64."""

    code = "bad_request"


class Unauthorized(GuidepostError):
    """API keys are configured and the request has none, or a wrong one."""

    code = "unauthorized"


class UnsupportedMediaType(GuidepostError):
    """The body is neither multipart/form-data nor JSON."""

    code = "unsupported_media_type"


class InvalidField(GuidepostError):
    """A field has a value the server does not accept; the message names the field."""

    code = "invalid_field"

    def __init__(self, field: str, problem: str):
        super().__init__(f"Field '{field}' {problem}.")
        self.field = field


class ImageRejected(GuidepostError):
    """The image is empty, truncated or corrupt."""

    code = "invalid_image"


class UnsupportedImage(ImageRejected):
    """The bytes are not an image format the server decodes."""

    code = "unsupported_image"


class TooLarge(GuidepostError):
    """The body, the image or its pixel count is over a limit."""

    code = "payload_too_large"


class Overloaded(GuidepostError):
    """This worker is already answering as many requests as it admits."""

    code = "overloaded"


class NotReady(GuidepostError):
    """The models are still loading, or failed to load."""

    code = "not_ready"
