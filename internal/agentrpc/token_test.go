package agentrpc_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc"
	"github.com/wrennhq/wrenn/internal/agentrpc/agentv1/agentv1connect"
	"github.com/wrennhq/wrenn/internal/mock"
)

// infoAgent is a mock agent that answers GetHost.
type infoAgent struct{ *mock.Agent }

func (infoAgent) Info(context.Context) (*wrenn.HostInfo, error) {
	return &wrenn.HostInfo{ID: "h1"}, nil
}

// TestEmptyTokenNeverAuthenticates: an empty bearer token is refused, and
// an agent whose own token is empty admits no one, not even a caller
// presenting an empty one. Over HTTP/2 the header arrives as sent, trailing
// space and all, so the handler sees it untrimmed here too.
func TestEmptyTokenNeverAuthenticates(t *testing.T) {
	for _, tc := range []struct {
		token, header string
		want          int
	}{
		{"", "Bearer ", http.StatusUnauthorized},
		{"", "Bearer", http.StatusUnauthorized},
		{"", "", http.StatusUnauthorized},
		{"secret", "Bearer ", http.StatusUnauthorized},
		{"secret", "Bearer secre", http.StatusUnauthorized},
		{"secret", "Bearer secret", http.StatusOK},
	} {
		h := agentrpc.NewHandler(infoAgent{&mock.Agent{}}, tc.token)
		req := httptest.NewRequest("POST", agentv1connect.AgentServiceGetHostProcedure, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		if tc.header != "" {
			req.Header["Authorization"] = []string{tc.header}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("agent token %q, Authorization %q: %d %s, want %d", tc.token, tc.header, rec.Code, rec.Body, tc.want)
		}
	}
}
