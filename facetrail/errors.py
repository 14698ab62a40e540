"""The exceptions facetrail raises. Vendor errors are translated into these at the edge."""

from __future__ import annotations


class FacetrailError(Exception):
    """Base class. ``retryable`` tells workers whether trying again may succeed."""

    retryable: bool = False
    code: str = "error"

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class ConfigurationError(FacetrailError):
    code = "configuration"


class MissingExtraError(ConfigurationError):
    """A backend or model needs an optional dependency that is not installed."""

    code = "missing_extra"


class ModelNotInstalledError(ConfigurationError):
    code = "model_not_installed"


class InvalidImageError(FacetrailError):
    """The input is not an image we can read (corrupt, empty, wrong type, too large, bomb)."""

    code = "invalid_image"


class ImageTooLargeError(InvalidImageError):
    code = "image_too_large"


class ImageNotFoundError(InvalidImageError):
    code = "image_not_found"


class FetchError(FacetrailError):
    """An image could not be fetched; ``retryable`` says whether trying later may help."""

    code = "fetch_failed"


class URLRefusedError(FetchError):
    """The source, or an address it resolves or redirects to, is not allowed."""

    code = "url_refused"
    retryable = False


class SourceRefusedError(FacetrailError):
    """A local file outside the configured image roots, named by a caller who may not read it.

    Its message says nothing about the file (not whether it exists, nor what it is)."""

    code = "source_refused"
    retryable = False


class FetchTimeoutError(FetchError):
    code = "fetch_timeout"
    retryable = True


class HTTPStatusError(FetchError):
    """The server answered with an error status (4xx final; 408, 429 and 5xx retryable)."""

    code = "http_error"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, retryable=status >= 500 or status in (408, 429))
        self.status = status


class InvalidParameterError(FacetrailError):
    code = "invalid_parameter"


class UnsupportedOperationError(InvalidParameterError):
    """The backend does not implement an operation (users, tags, a tagging operation...)."""

    code = "unsupported_operation"


class NoFaceError(FacetrailError):
    """An operation needed a face (compare source, enrollment) and found none."""

    code = "no_face"


class CollectionNotFoundError(FacetrailError):
    code = "collection_not_found"


class CollectionExistsError(FacetrailError):
    code = "collection_exists"


class NotFoundError(FacetrailError):
    code = "not_found"


class UserNotFoundError(NotFoundError):
    code = "user_not_found"


class UserExistsError(FacetrailError):
    code = "user_exists"


class BackendError(FacetrailError):
    """A backend call failed; ``retryable`` says whether a retry may help."""

    code = "backend"


class ThrottledError(BackendError):
    code = "throttled"
    retryable = True


class BackendUnavailableError(BackendError):
    code = "unavailable"
    retryable = True
