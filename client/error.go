package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error codes of the API's error envelope. They are stable; match on them.
const (
	CodeInvalid          = "invalid_request"        // 400: malformed or failed validation
	CodeUnauthorized     = "unauthorized"           // 401: missing or bad credentials
	CodeForbidden        = "forbidden"              // 403: the operator does not allow it
	CodeNotFound         = "not_found"              // 404: no such thing, or not the caller's
	CodeMethodNotAllowed = "method_not_allowed"     // 405
	CodeConflict         = "conflict"               // 409: exists, or in the wrong state
	CodeTooLarge         = "payload_too_large"      // 413
	CodeUnsupportedMedia = "unsupported_media_type" // 415
	CodeRateLimited      = "rate_limited"           // 429: wait RetryAfter
	CodeQuotaExceeded    = "quota_exceeded"         // 429: the team is at a quota
	CodeHostFull         = "host_full"              // 503: no room for the sandbox now
	CodeHostAgent        = "host_agent_error"       // 502: the host agent failed
	CodeInternal         = "internal"               // 500
	CodeHostHasSandboxes = "host_has_sandboxes"     // 409: a host delete without force; see SandboxIDs

	// CodeStream is the client's own: a WebSocket stream ended with the
	// server's "error" message, whose words are the Message. Status is 0.
	CodeStream = "stream_error"
)

// Error is every error the API answers with: the status and the envelope
// {"error":{"code","message"}}. A body that is not the envelope (a proxy's
// page) still becomes an *Error with the status, a code derived from it
// and the body's start as the message.
type Error struct {
	Status  int // HTTP status; 0 for errors sent on a stream
	Code    string
	Message string
	// RetryAfter is the Retry-After header of a 429, if any.
	RetryAfter time.Duration
	// SandboxIDs, of CodeHostHasSandboxes, names the sandboxes on the host.
	SandboxIDs []string
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("wrenn: %s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("wrenn: %d %s: %s", e.Status, e.Code, e.Message)
}

// ErrorCode returns the Code of the first *Error in err's chain, or "".
func ErrorCode(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return ""
}

// IsNotFound reports whether err is the API's not_found.
func IsNotFound(err error) bool { return ErrorCode(err) == CodeNotFound }

// IsConflict reports whether err is the API's conflict.
func IsConflict(err error) bool { return ErrorCode(err) == CodeConflict }

// IsInvalid reports whether err is the API's invalid_request.
func IsInvalid(err error) bool { return ErrorCode(err) == CodeInvalid }

// IsUnauthorized reports whether err is the API's unauthorized.
func IsUnauthorized(err error) bool { return ErrorCode(err) == CodeUnauthorized }

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// errorFrom reads resp's body as the error envelope.
func errorFrom(resp *http.Response) *Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := parseError(resp.StatusCode, b)
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil {
			e.RetryAfter = time.Duration(n) * time.Second
		}
	}
	return e
}

func parseError(status int, body []byte) *Error {
	var env struct {
		Error *struct {
			Code       string   `json:"code"`
			Message    string   `json:"message"`
			SandboxIDs []string `json:"sandbox_ids"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil && env.Error.Code != "" {
		return &Error{Status: status, Code: env.Error.Code, Message: env.Error.Message, SandboxIDs: env.Error.SandboxIDs}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200]
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &Error{Status: status, Code: codeOf(status), Message: msg}
}

// codeOf is the code a status stands for when the body does not say.
func codeOf(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeInvalid
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusConflict:
		return CodeConflict
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusUnsupportedMediaType:
		return CodeUnsupportedMedia
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusServiceUnavailable:
		return CodeHostFull
	case http.StatusBadGateway:
		return CodeHostAgent
	}
	return CodeInternal
}
