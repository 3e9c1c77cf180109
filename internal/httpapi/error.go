package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/wrennhq/wrenn"
)

// statusOf maps an error code to its HTTP status. It is the only place
// that does.
func statusOf(code string) int {
	switch code {
	case wrenn.EInvalid:
		return http.StatusBadRequest
	case wrenn.EUnauthorized:
		return http.StatusUnauthorized
	case wrenn.EForbidden:
		return http.StatusForbidden
	case wrenn.ENotFound:
		return http.StatusNotFound
	case wrenn.EMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case wrenn.EConflict, wrenn.EHostHasSandboxes:
		return http.StatusConflict
	case wrenn.ETooLarge:
		return http.StatusRequestEntityTooLarge
	case wrenn.EUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case wrenn.ERateLimited, wrenn.EQuotaExceeded:
		return http.StatusTooManyRequests
	case wrenn.EHostFull:
		return http.StatusServiceUnavailable
	case wrenn.EHostAgent:
		return http.StatusBadGateway
	default:
		return http.StatusInternalServerError
	}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError writes err as the spec's envelope. Errors without a code are
// ours: they are logged with their detail and shown as a bare "internal".
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := wrenn.ErrorCode(err)
	msg := wrenn.ErrorMessage(err)
	if code == wrenn.EInternal {
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			// The client went away; nobody will read an answer.
			return
		}
		s.log.ErrorContext(r.Context(), "request failed", slog.String(attrMethod, r.Method),
			slog.String(attrPath, r.URL.Path), slog.Any(attrError, err))
	}
	if d := wrenn.RetryAfterOf(err); d > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
	}
	writeJSON(w, statusOf(code), errorBody{Error: errorDetail{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a failed write means the client is gone
}
