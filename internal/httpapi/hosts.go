package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/fleet"
)

// The registry of hosts (issue 13): /v1/hosts, for logged-in users (JWT);
// internal/fleet decides who may do what.

type hostJSON struct {
	ID               string           `json:"id"`
	Type             wrenn.HostType   `json:"type"`
	TeamID           *string          `json:"team_id"`
	Provider         *string          `json:"provider"`
	AvailabilityZone *string          `json:"availability_zone"`
	Arch             *string          `json:"arch"`
	CPUCores         *int             `json:"cpu_cores"`
	MemoryMB         *int             `json:"memory_mb"`
	DiskGB           *int             `json:"disk_gb"`
	Address          *string          `json:"address"`
	CapacityVCPUs    *int             `json:"capacity_vcpus"`
	CapacityMemoryMB *int             `json:"capacity_memory_mb"`
	Status           wrenn.HostStatus `json:"status"`
	Draining         bool             `json:"draining"`
	Tags             []string         `json:"tags"`
	LastHeartbeatAt  *time.Time       `json:"last_heartbeat_at"`
	CreatedBy        string           `json:"created_by"`
	CreatedAt        time.Time        `json:"created_at"`
	UpdatedAt        time.Time        `json:"updated_at"`
}

// orNull shows "" as null, as the contract has unknown fields.
func orNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// hostOut is a host as clients see it: never its token's hash.
func hostOut(h *wrenn.Host) hostJSON {
	tags := h.Tags
	if tags == nil {
		tags = []string{}
	}
	var capVCPUs, capMemory *int
	if c := h.Capacity; c != nil {
		capVCPUs, capMemory = &c.VCPUs, &c.MemoryMB
	}
	return hostJSON{ID: h.ID, Type: h.Type, TeamID: orNull(h.TeamID), Provider: orNull(h.Provider),
		AvailabilityZone: orNull(h.AvailabilityZone), Arch: orNull(h.Arch), CPUCores: h.CPUCores, MemoryMB: h.MemoryMB,
		DiskGB: h.DiskGB, Address: orNull(h.Address), Status: h.ShownStatus(), Draining: h.Draining, Tags: tags,
		LastHeartbeatAt: h.LastHeartbeatAt, CreatedBy: h.CreatedBy, CreatedAt: h.CreatedAt, UpdatedAt: h.UpdatedAt,
		CapacityVCPUs: capVCPUs, CapacityMemoryMB: capMemory}
}

type createHostJSON struct {
	Host              hostJSON   `json:"host"`
	RegistrationToken string     `json:"registration_token"`
	ExpiresAt         *time.Time `json:"registration_token_expires_at"`
}

func hostCaller(r *http.Request) fleet.Caller {
	c := caller(r)
	return fleet.Caller{UserID: c.UserID, TeamID: c.TeamID}
}

func (s *Server) createHost(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Type             wrenn.HostType `json:"type"`
		TeamID           string         `json:"team_id"`
		Provider         string         `json:"provider"`
		AvailabilityZone string         `json:"availability_zone"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	h, token, err := s.hosts.Create(r.Context(), hostCaller(r), fleet.CreateRequest{Type: req.Type, TeamID: req.TeamID,
		Provider: req.Provider, AvailabilityZone: req.AvailabilityZone})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, createHostJSON{Host: hostOut(h), RegistrationToken: token, ExpiresAt: h.TokenExpiresAt})
}

func (s *Server) listHosts(w http.ResponseWriter, r *http.Request) {
	hosts, err := s.hosts.List(r.Context(), hostCaller(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]hostJSON, len(hosts))
	for i, h := range hosts {
		out[i] = hostOut(h)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getHost(w http.ResponseWriter, r *http.Request) {
	h, err := s.hosts.Get(r.Context(), hostCaller(r), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, hostOut(h))
}

func (s *Server) deleteHost(w http.ResponseWriter, r *http.Request) {
	var force bool
	switch v := r.URL.Query().Get("force"); v {
	case "", "false":
	case "true":
		force = true
	default:
		s.writeError(w, r, wrenn.Errorf(wrenn.EInvalid, "force must be \"true\", \"false\" or absent"))
		return
	}
	if _, err := s.hosts.Delete(r.Context(), hostCaller(r), r.PathValue("id"), force); err != nil {
		if busy, ok := errors.AsType[*wrenn.HostBusyError](err); ok {
			// The contract's HostHasCapsulesError: the envelope, and what
			// stands in the way.
			writeJSON(w, statusOf(wrenn.ErrorCode(err)), map[string]any{"error": map[string]any{
				"code": wrenn.ErrorCode(err), "message": wrenn.ErrorMessage(err), "sandbox_ids": busy.SandboxIDs,
			}})
			return
		}
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) hostDeletePreview(w http.ResponseWriter, r *http.Request) {
	h, ids, err := s.hosts.DeletePreview(r.Context(), hostCaller(r), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Host       hostJSON `json:"host"`
		SandboxIDs []string `json:"sandbox_ids"`
	}{hostOut(h), ids})
}

func (s *Server) regenerateHostToken(w http.ResponseWriter, r *http.Request) {
	h, token, err := s.hosts.RegenerateToken(r.Context(), hostCaller(r), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, createHostJSON{Host: hostOut(h), RegistrationToken: token, ExpiresAt: h.TokenExpiresAt})
}

func (s *Server) listHostTags(w http.ResponseWriter, r *http.Request) {
	tags, err := s.hosts.Tags(r.Context(), hostCaller(r), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tags)
}

func (s *Server) addHostTag(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Tag string `json:"tag"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.hosts.AddTag(r.Context(), hostCaller(r), r.PathValue("id"), req.Tag); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) removeHostTag(w http.ResponseWriter, r *http.Request) {
	if err := s.hosts.RemoveTag(r.Context(), hostCaller(r), r.PathValue("id"), r.PathValue("tag")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// drainHost and undrainHost are our extension: 0.1.5 has the status
// draining but no operation that sets it.
func (s *Server) drainHost(w http.ResponseWriter, r *http.Request)   { s.setHostDraining(w, r, true) }
func (s *Server) undrainHost(w http.ResponseWriter, r *http.Request) { s.setHostDraining(w, r, false) }

func (s *Server) setHostDraining(w http.ResponseWriter, r *http.Request, draining bool) {
	h, err := s.hosts.SetDraining(r.Context(), hostCaller(r), r.PathValue("id"), draining)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, hostOut(h))
}
