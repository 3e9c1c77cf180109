package httpapi

import (
	"net/http"
	"strings"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/auth"
)

// requireToken admits requests with a valid "Authorization: Bearer <JWT>".
func (s *Server) requireToken(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			s.writeError(w, r, wrenn.Errorf(wrenn.EUnauthorized, "an Authorization: Bearer <token> header is required"))
			return
		}
		c, err := s.auth.AuthenticateToken(r.Context(), strings.TrimSpace(token))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next(w, r.WithContext(auth.WithCaller(r.Context(), c)))
	}
}

// requireAPIKey admits requests with a valid X-API-Key header.
func (s *Server) requireAPIKey(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-API-Key")
		if key == "" {
			s.writeError(w, r, wrenn.Errorf(wrenn.EUnauthorized, "an X-API-Key header is required"))
			return
		}
		c, err := s.auth.AuthenticateAPIKey(r.Context(), key)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next(w, r.WithContext(auth.WithCaller(r.Context(), c)))
	}
}

// caller returns the authenticated caller; the middleware guarantees one.
func caller(r *http.Request) auth.Caller {
	c, _ := auth.CallerFrom(r.Context())
	return c
}
