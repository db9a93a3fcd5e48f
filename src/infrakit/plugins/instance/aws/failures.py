"""What a failed EC2 call means, and the error of ours it becomes.

:func:`classify` reads an exception raised by boto3 (or our own timeout) as a
:class:`Failure` of one :class:`Kind`; the kind says whether a retry may help and whether
EC2 may have carried the request out anyway (a 503 or a read timeout after the request
was sent: a Provision must then look before it launches again). :meth:`Failure.error`
turns it into our error tree with one line that names the cause:

- throttled (``RequestLimitExceeded`` …), unreachable, 5xx, timeouts → ``TemporaryError``
  (the group backs off); no capacity → ``TemporaryError`` with a long delay;
- credentials missing, refused or expired → ``PermanentError`` saying so;
- ``*.NotFound`` → ``NotFoundError``; a request EC2 or botocore finds malformed →
  ``InvalidError`` naming the field; any other refusal → ``PermanentError``.
"""

from __future__ import annotations

import concurrent.futures
import enum
import functools
import importlib
import re
from dataclasses import dataclass
from typing import Any

from infrakit import errors, validation


class Kind(enum.Enum):
    THROTTLED = "throttled"
    """EC2 refused the request for its rate: not carried out, worth retrying."""
    UNREACHABLE = "unreachable"
    """The request never reached EC2: not carried out, worth retrying."""
    UNCERTAIN = "uncertain"
    """Sent, but no answer we can trust (5xx, read timeout): maybe carried out."""
    CAPACITY = "capacity"
    """EC2 has no capacity for it now: later, not in a few seconds."""
    CREDENTIALS = "credentials"
    """No credentials, or EC2 refused them."""
    DENIED = "denied"
    """The credentials lack a permission."""
    NOT_FOUND = "not_found"
    """No such instance (or other resource)."""
    INVALID = "invalid"
    """The request is malformed."""
    REFUSED = "refused"
    """Any other refusal: retrying the same request cannot help."""


RETRYABLE = frozenset({Kind.THROTTLED, Kind.UNREACHABLE, Kind.UNCERTAIN})

THROTTLING = frozenset({
    "RequestLimitExceeded", "Throttling", "ThrottlingException", "ThrottledException",
    "RequestThrottled", "RequestThrottledException", "TooManyRequestsException",
    "EC2ThrottledException", "SlowDown", "PriorRequestNotComplete", "BandwidthLimitExceeded",
})
TRANSIENT = frozenset({
    "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable",
    "ServerInternal", "RequestTimeout", "RequestTimeoutException",
})
CAPACITY = frozenset({
    "InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientCapacity",
    "InsufficientReservedInstanceCapacity", "InsufficientAddressCapacity",
})
CREDENTIALS = {
    "AuthFailure": "EC2 could not validate the credentials",
    "UnrecognizedClientException": "EC2 does not know the access key",
    "InvalidClientTokenId": "EC2 does not know the access key",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "IncompleteSignature": "the request's signature is incomplete",
    "MissingAuthenticationToken": "no credentials were sent",
    "ExpiredToken": "the credentials have expired",
    "ExpiredTokenException": "the credentials have expired",
    "RequestExpired": "the request expired (is the clock right?)",
    "OptInRequired": "the account is not subscribed to EC2 in this region",
}
DENIED = frozenset({"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"})
_INVALID = re.compile(r"^(Invalid|Missing|Unknown|Malformed|Unsupported|Unexpected)")
_CREDENTIALS_HINT = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or "
                     "write ~/.aws/credentials")


@dataclass(eq=False)
class Failure(Exception):
    """One failed EC2 call, understood (raised by :mod:`.api`, never past the plugin)."""

    kind: Kind
    operation: str
    """The EC2 action (``RunInstances``)."""
    code: str
    """EC2's error code, or the exception's class when EC2 sent none."""
    message: str
    """What EC2 or botocore said."""
    problems: tuple[validation.Problem, ...] = ()
    """For a request botocore refused: each bad field."""
    pending: concurrent.futures.Future[Any] | None = None
    """For our own timeout: the call, still running in its thread (it may yet succeed)."""

    def __str__(self) -> str:
        return f"EC2 {self.operation}: {self.code}: {self.message}"

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE

    @property
    def uncertain(self) -> bool:
        """Whether EC2 may have carried the request out although it failed."""
        return self.kind is Kind.UNCERTAIN

    def error(self, *, attempts: int = 1, **data: Any) -> errors.InfrakitError:
        """Our error for this failure, after ``attempts`` tries."""
        data = {"operation": self.operation, "code": self.code, **data}
        tried = f" (after {attempts} attempts)" if attempts > 1 else ""
        text = f"{self}{tried}"
        if self.kind is Kind.THROTTLED:
            return errors.TemporaryError(f"{text}: EC2 is throttling us", delay=5.0, **data)
        if self.kind in (Kind.UNREACHABLE, Kind.UNCERTAIN):
            return errors.TemporaryError(text, delay=2.0, **data)
        if self.kind is Kind.CAPACITY:
            return errors.TemporaryError(text, delay=30.0, **data)
        if self.kind is Kind.CREDENTIALS:
            return errors.PermanentError(f"AWS credentials: {self.message}", **data)
        if self.kind is Kind.DENIED:
            return errors.PermanentError(f"{text} (the credentials lack this permission)",
                                         **data)
        if self.kind is Kind.NOT_FOUND:
            return errors.NotFoundError(text, **data)
        if self.kind is Kind.INVALID:
            if self.problems:
                return validation.invalid(list(self.problems))
            return errors.InvalidError(text, **data)
        return errors.PermanentError(text, **data)


@functools.cache
def _botocore() -> Any:
    return importlib.import_module("botocore.exceptions")


def classify(exc: BaseException, *, operation: str, root: str = "") -> Failure:
    """``exc``, raised by a call of ``operation``, as a :class:`Failure`; a request
    botocore refused names its fields under ``root``. Exceptions we do not know are
    uncertain (a retry looks first)."""
    if isinstance(exc, Failure):
        return exc
    if isinstance(exc, TimeoutError):
        return Failure(Kind.UNCERTAIN, operation, "Timeout", "no answer in time")
    found = _botocore()
    name = type(exc).__name__
    if isinstance(exc, found.ClientError):
        return _client_error(exc, operation=operation)
    if isinstance(exc, found.ParamValidationError):
        report = str(exc.kwargs.get("report", exc))
        return Failure(Kind.INVALID, operation, name, report.replace("\n", "; "),
                       problems=tuple(param_problems(report, root=root)))
    if isinstance(exc, found.NoCredentialsError | found.PartialCredentialsError):
        return Failure(Kind.CREDENTIALS, operation, name, f"{exc}: {_CREDENTIALS_HINT}")
    if isinstance(exc, found.CredentialRetrievalError | found.TokenRetrievalError):
        return Failure(Kind.CREDENTIALS, operation, name, str(exc))
    if isinstance(exc, found.EndpointConnectionError | found.ConnectTimeoutError
                  | found.ProxyConnectionError):
        return Failure(Kind.UNREACHABLE, operation, name, str(exc))
    if isinstance(exc, found.HTTPClientError | found.ConnectionError):
        return Failure(Kind.UNCERTAIN, operation, name, str(exc))
    return Failure(Kind.UNCERTAIN, operation, name, str(exc) or name)


def _client_error(exc: Any, *, operation: str) -> Failure:
    error = exc.response.get("Error") or {}
    status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    code = str(error.get("Code") or f"HTTP {status}")
    message = str(error.get("Message") or "").strip() or f"HTTP status {status}"
    if code in THROTTLING:
        kind = Kind.THROTTLED
    elif code in CAPACITY:  # before the status: EC2 answers these with a 500
        kind = Kind.CAPACITY
    elif code in TRANSIENT or status >= 500:
        kind = Kind.UNCERTAIN
    elif code in CREDENTIALS:
        kind = Kind.CREDENTIALS
        message = f"{CREDENTIALS[code]} ({code}: {message})"
    elif code in DENIED:
        kind = Kind.DENIED
    elif code.endswith(".NotFound"):
        kind = Kind.NOT_FOUND
    elif _INVALID.match(code):
        kind = Kind.INVALID
    else:
        kind = Kind.REFUSED
    return Failure(kind, operation, code, message)


# botocore's report, one problem per line:
#   Unknown parameter in BlockDeviceMappings[0].Ebs: "Bar", must be one of: A, B
#   Missing required parameter in input: "ImageId"
#   Invalid type for parameter MinCount, value: x, type: <class 'str'>, valid types: …
_NAMED = re.compile(r'^(?P<what>Unknown|Missing required) parameter in (?P<path>\S+): '
                    r'"(?P<name>[^"]+)"(?:, must be one of: (?P<known>.*))?$')
_AT = re.compile(r"^Invalid (?P<what>\w+) for parameter (?P<path>[^,]+), (?P<rest>.*)$")


def param_problems(report: str, *, root: str) -> list[validation.Problem]:
    """botocore's report of a request it refused, as problems with paths under ``root``."""
    found = []
    for line in filter(None, (text.strip() for text in report.splitlines())):
        if line.startswith("Parameter validation failed"):
            continue
        named, at = _NAMED.match(line), _AT.match(line)
        if named is not None:
            parent = "" if named["path"] == "input" else named["path"]
            path = _join(root, parent, named["name"])
            if named["what"] == "Unknown":
                known = [k.strip() for k in (named["known"] or "").split(",") if k.strip()]
                found.append(validation.unknown_field(named["name"], known, path=path))
            else:
                found.append(validation.Problem(path, "required"))
        elif at is not None:
            found.append(validation.Problem(_join(root, at["path"]),
                                            f"invalid {at['what']}: {at['rest']}"))
        else:
            found.append(validation.Problem(root, line))
    return found


def _join(*parts: str) -> str:
    text = ""
    for part in filter(None, parts):
        text += part if not text or part.startswith("[") else f".{part}"
    return text


def timed_out(operation: str, pending: concurrent.futures.Future[Any]) -> Failure:
    """Our own timeout of a call whose thread still runs."""
    return Failure(Kind.UNCERTAIN, operation, "Timeout", "no answer in time", pending=pending)

