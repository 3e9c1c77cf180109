package wrenn

import (
	"errors"
	"fmt"
	"time"
)

// Error codes are stable and machine-readable; clients may match on them.
// Each transport maps them to its own status in exactly one place.
const (
	EInvalid          = "invalid_request"        // the request is malformed or fails validation
	EUnauthorized     = "unauthorized"           // missing or bad credentials
	EForbidden        = "forbidden"              // the operator does not allow it (signup closed)
	ENotFound         = "not_found"              // no such thing, or not the caller's
	EMethodNotAllowed = "method_not_allowed"     // the path exists, the method does not
	EConflict         = "conflict"               // the thing exists or is in the wrong state
	ETooLarge         = "payload_too_large"      // the request body is over its limit
	EUnsupportedMedia = "unsupported_media_type" // the body is not of a type the route takes
	ERateLimited      = "rate_limited"           // too many attempts: try again after the error's RetryAfter
	EQuotaExceeded    = "quota_exceeded"         // the team is at one of its quotas; the message names it
	EHostFull         = "host_full"              // the host cannot fit the sandbox now; the message names what it lacks
	EHostAgent        = "host_agent_error"       // the host agent failed or cannot be reached
	EInternal         = "internal"               // a fault of ours; details are only logged
	// EHostHasSandboxes: a host delete without force, refused while
	// sandboxes live on the host (HostBusyError names them).
	EHostHasSandboxes = "host_has_sandboxes"
)

// Error is the one error type that carries a code to clients. Its message
// is safe to show; anything internal is wrapped elsewhere and only logged.
type Error struct {
	Code    string
	Message string
	// RetryAfter, for ERateLimited, is how long the caller must wait.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// EInternal if there is none.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return EInternal
}

// RetryAfterOf returns the RetryAfter of the first *Error in err's chain,
// or 0.
func RetryAfterOf(err error) time.Duration {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.RetryAfter
	}
	return 0
}

// ErrorMessage returns the client-safe message of the first *Error in
// err's chain, or a generic one if there is none.
func ErrorMessage(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Message
	}
	return "internal error"
}
