package httpapi

import (
	"net"
	"net/http"

	"github.com/wrennhq/wrenn/internal/auth"
)

type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type authResponse struct {
	Token  string `json:"token"`
	UserID string `json:"user_id"`
	TeamID string `json:"team_id"`
	Email  string `json:"email"`
}

func sessionJSON(s *auth.Session) authResponse {
	return authResponse{Token: s.Token, UserID: s.UserID, TeamID: s.TeamID, Email: s.Email}
}

func (s *Server) signup(w http.ResponseWriter, r *http.Request) {
	var req credentials
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	sess, err := s.auth.Signup(auth.WithClient(r.Context(), clientAddr(r)), req.Email, req.Password)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, sessionJSON(sess))
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req credentials
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	sess, err := s.auth.Login(auth.WithClient(r.Context(), clientAddr(r)), req.Email, req.Password)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sessionJSON(sess))
}

// clientAddr is the address the request came from, without its port.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
