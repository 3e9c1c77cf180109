package httpapi

import (
	"net/http"
	"strings"

	"github.com/coder/websocket"

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

// requireAPIKey admits requests with a valid X-API-Key header, and those
// of a logged-in user: "Authorization: Bearer <JWT>" acts for the team in
// the token (the web console works so). A WebSocket upgrade may carry
// either credential as a subprotocol instead, since browsers cannot set
// headers on one (wsCredential).
func (s *Server) requireAPIKey(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, token := r.Header.Get("X-API-Key"), ""
		if key == "" {
			if scheme, t, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
				token = strings.TrimSpace(t)
			}
		}
		if key == "" && token == "" {
			key, token = wsCredential(r)
		}
		var c auth.Caller
		var err error
		switch {
		case key != "":
			c, err = s.auth.AuthenticateAPIKey(r.Context(), key)
		case token != "":
			c, err = s.auth.AuthenticateToken(r.Context(), token)
		default:
			err = wrenn.Errorf(wrenn.EUnauthorized, "an X-API-Key header (or Authorization: Bearer <token>) is required")
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next(w, r.WithContext(auth.WithCaller(r.Context(), c)))
	}
}

// WebSocket subprotocols: a client that cannot set headers (a browser)
// offers wsProtocol and, beside it, its credential as
// wsKeyProtocol+<API key> or wsBearerProtocol+<JWT>. The server selects
// wsProtocol, so the credential is never echoed back.
const (
	wsProtocol       = "wrenn"
	wsKeyProtocol    = "wrenn.key."
	wsBearerProtocol = "wrenn.bearer."
)

// wsCredential finds the credential a WebSocket upgrade offers as a
// subprotocol.
func wsCredential(r *http.Request) (key, token string) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return "", ""
	}
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			p = strings.TrimSpace(p)
			if k, ok := strings.CutPrefix(p, wsKeyProtocol); ok && key == "" {
				key = k
			} else if t, ok := strings.CutPrefix(p, wsBearerProtocol); ok && token == "" {
				token = t
			}
		}
	}
	return key, token
}

// acceptWS upgrades r to a WebSocket, selecting wsProtocol when the
// client offered it.
func acceptWS(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	return websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{wsProtocol}})
}

// caller returns the authenticated caller; the middleware guarantees one.
func caller(r *http.Request) auth.Caller {
	c, _ := auth.CallerFrom(r.Context())
	return c
}
