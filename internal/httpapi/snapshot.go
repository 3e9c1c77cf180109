package httpapi

import (
	"net/http"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
)

type templateJSON struct {
	Name      string             `json:"name"`
	Type      wrenn.TemplateType `json:"type"`
	VCPUs     *int               `json:"vcpus"`
	MemoryMB  *int               `json:"memory_mb"`
	SizeBytes int64              `json:"size_bytes"`
	CreatedAt time.Time          `json:"created_at"`
}

func templateOut(t *wrenn.Template) templateJSON {
	return templateJSON{Name: t.Name, Type: t.Type, VCPUs: t.VCPUs, MemoryMB: t.MemoryMB, SizeBytes: t.SizeBytes, CreatedAt: t.CreatedAt}
}

func (s *Server) createSnapshot(w http.ResponseWriter, r *http.Request) {
	var overwrite bool
	switch v := r.URL.Query().Get("overwrite"); v {
	case "", "false":
	case "true":
		overwrite = true
	default:
		s.writeError(w, r, wrenn.Errorf(wrenn.EInvalid, "overwrite must be \"true\" or absent"))
		return
	}
	var req struct {
		SandboxID string `json:"sandbox_id"`
		Name      string `json:"name"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := s.control.CreateSnapshot(r.Context(), caller(r).TeamID, control.SnapshotParams{
		SandboxID: req.SandboxID, Name: req.Name, Overwrite: overwrite,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, templateOut(t))
}

func (s *Server) listSnapshots(w http.ResponseWriter, r *http.Request) {
	ts, err := s.control.ListTemplates(r.Context(), caller(r).TeamID, wrenn.TemplateType(r.URL.Query().Get("type")))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]templateJSON, len(ts))
	for i, t := range ts {
		out[i] = templateOut(t)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteSnapshot(w http.ResponseWriter, r *http.Request) {
	if err := s.control.DeleteSnapshot(r.Context(), caller(r).TeamID, r.PathValue("name")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
