package httpapi

import (
	"net/http"
	"time"

	"github.com/wrennhq/wrenn"
)

type apiKeyJSON struct {
	ID        string     `json:"id"`
	TeamID    string     `json:"team_id"`
	Name      string     `json:"name"`
	KeyPrefix string     `json:"key_prefix"`
	CreatedAt time.Time  `json:"created_at"`
	LastUsed  *time.Time `json:"last_used"`
	Key       *string    `json:"key"`
}

func apiKeyOut(k *wrenn.APIKey, plaintext *string) apiKeyJSON {
	return apiKeyJSON{ID: k.ID, TeamID: k.TeamID, Name: k.Name, KeyPrefix: k.KeyPrefix,
		CreatedAt: k.CreatedAt, LastUsed: k.LastUsed, Key: plaintext}
}

func (s *Server) createAPIKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	k, plain, err := s.auth.CreateAPIKey(r.Context(), caller(r), req.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, apiKeyOut(k, &plain))
}

func (s *Server) listAPIKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.auth.ListAPIKeys(r.Context(), caller(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]apiKeyJSON, len(keys))
	for i, k := range keys {
		out[i] = apiKeyOut(k, nil)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteAPIKey(w http.ResponseWriter, r *http.Request) {
	if err := s.auth.DeleteAPIKey(r.Context(), caller(r), r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
