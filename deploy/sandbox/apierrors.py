"""Kubernetes `Status` errors of the real shape (apimachinery pkg/api/errors, metav1.Status)."""


class ApiError(Exception):
    """An error answered as a metav1.Status body with HTTP `code`."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def _details(res, name, **extra):
    d = {}
    if name:
        d["name"] = name
    if res is not None:
        if res.group:
            d["group"] = res.group
        d["kind"] = res.plural
    d.update(extra)
    return d


def not_found(res, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (res.qualified, name), _details(res, name))


def already_exists(res, name):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (res.qualified, name),
                    _details(res, name))


def conflict(res, name, why=None):
    why = why or ("the object has been modified; please apply your changes to the latest "
                  "version and try again")
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s'
                    % (res.qualified, name, why), _details(res, name))


def invalid(res, name, causes):
    """causes: list of (field, reason, message) with reason like FieldValueInvalid."""
    kind = res.kind if res is not None else "Object"
    if res is not None and res.group:   # schema.GroupKind.String(): "StatefulSet.apps"
        kind = "%s.%s" % (res.kind, res.group)
    text = ", ".join("%s: %s" % (f, m) if f else m for f, _, m in causes)
    if len(causes) > 1:                 # an aggregate of several errors prints as a list
        text = "[%s]" % text
    d = _details(res, name)
    if res is not None and res.group:
        d["group"] = res.group
    if res is not None:
        d["kind"] = res.kind
    d["causes"] = [{"reason": r, "message": m, "field": f} for f, r, m in causes]
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (kind, name, text), d)


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def forbidden(res, name, message):
    q = res.qualified if res is not None else ""
    return ApiError(403, "Forbidden", '%s "%s" is forbidden: %s' % (q, name, message),
                    _details(res, name))


def expired(message):
    return ApiError(410, "Expired", message)


def method_not_allowed(message="the server does not allow this method on the requested resource"):
    return ApiError(405, "MethodNotAllowed", message, {})


def unsupported_media_type(ctype):
    return ApiError(415, "UnsupportedMediaType",
                    'the body of the request was in an unknown format - accepted media types '
                    'include: application/json-patch+json, application/merge-patch+json, '
                    'application/strategic-merge-patch+json (got "%s")' % ctype)


def unauthorized():
    return ApiError(401, "Unauthorized", "Unauthorized")


def internal(message):
    return ApiError(500, "InternalError", "Internal error occurred: %s" % message,
                    {"causes": [{"message": message}]})


def too_many_requests(retry_after):
    return ApiError(429, "TooManyRequests", "Too many requests, please try again later.",
                    {"retryAfterSeconds": retry_after}, {"Retry-After": str(retry_after)})
