package httpapi

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
)

// Defaults of CreateSandboxRequest, as the spec gives them.
const (
	defaultTemplate   = "minimal"
	defaultTimeoutSec = 300
)

type sandboxJSON struct {
	ID           string              `json:"id"`
	Status       wrenn.SandboxStatus `json:"status"`
	Template     string              `json:"template"`
	VCPUs        int                 `json:"vcpus"`
	MemoryMB     int                 `json:"memory_mb"`
	TimeoutSec   int                 `json:"timeout_sec"`
	GuestIP      string              `json:"guest_ip"`
	HostIP       string              `json:"host_ip"`
	CreatedAt    time.Time           `json:"created_at"`
	StartedAt    *time.Time          `json:"started_at"`
	LastActiveAt *time.Time          `json:"last_active_at"`
	LastUpdated  time.Time           `json:"last_updated"`
	// Beyond the contract: the sandbox's egress policy (wrenn.Network),
	// in the words of E2B's API, which users know.
	AllowInternetAccess bool        `json:"allow_internet_access"`
	Network             networkJSON `json:"network"`
	// Beyond the contract: what inactivity does, and the team's labels.
	// A sandbox's envs are not reported: they may hold secrets.
	AutoPause bool              `json:"auto_pause"`
	Metadata  map[string]string `json:"metadata"`
}

// networkJSON is the lists of an egress policy, as requested and reported.
type networkJSON struct {
	AllowOut []string `json:"allow_out"`
	DenyOut  []string `json:"deny_out"`
}

func sandboxOut(sb *wrenn.Sandbox) sandboxJSON {
	return sandboxJSON{ID: sb.ID, Status: sb.Status, Template: sb.Template, VCPUs: sb.VCPUs, MemoryMB: sb.MemoryMB,
		TimeoutSec: sb.TimeoutSec, GuestIP: sb.GuestIP, HostIP: sb.HostIP, CreatedAt: sb.CreatedAt,
		StartedAt: sb.StartedAt, LastActiveAt: sb.LastActiveAt, LastUpdated: sb.LastUpdated,
		AllowInternetAccess: sb.Network.Internet,
		AutoPause:           sb.AutoPause,
		Metadata:            orEmpty(sb.Metadata),
		Network: networkJSON{
			AllowOut: append([]string{}, sb.Network.AllowOut...),
			DenyOut:  append([]string{}, sb.Network.DenyOut...),
		}}
}

// networkIn is the egress policy a create request asks for: nil, the
// operator's default, when it names none; a field it leaves out keeps
// that field of the default.
func networkIn(internet *bool, n *networkJSON, def wrenn.Network) *wrenn.Network {
	if internet == nil && n == nil {
		return nil
	}
	out := def
	if internet != nil {
		out.Internet = *internet
	}
	if n != nil {
		out.AllowOut, out.DenyOut = n.AllowOut, n.DenyOut
	}
	return &out
}

// orZeroOrInvalid is a size for control.CreateParams: 0 when left out (the
// template decides), -1 (refused) for an explicit 0.
func orZeroOrInvalid(p *int) int {
	switch {
	case p == nil:
		return 0
	case *p == 0:
		return -1
	}
	return *p
}

func orDefault[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func (s *Server) createSandbox(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Template   *string `json:"template"`
		VCPUs      *int    `json:"vcpus"`
		MemoryMB   *int    `json:"memory_mb"`
		TimeoutSec *int    `json:"timeout_sec"`
		// Beyond the contract: an egress policy, as E2B asks for one.
		AllowInternetAccess *bool        `json:"allow_internet_access"`
		Network             *networkJSON `json:"network"`
		// Beyond the contract: what inactivity does, the default
		// environment of its commands, and labels, as E2B has them.
		AutoPause *bool             `json:"auto_pause"`
		Envs      map[string]string `json:"envs"`
		Metadata  map[string]string `json:"metadata"`
		// Beyond the contract (issue 13, placement): tags the host must have.
		HostTags []string `json:"host_tags"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	// The later product's capsules pause when idle, and only when asked
	// to (its timeout_sec defaults to 0); the seed's sandboxes are
	// destroyed after 300 s.
	timeout, autoPause := defaultTimeoutSec, false
	if onCapsules(r) {
		timeout, autoPause = 0, true
	}
	sb, err := s.control.CreateSandbox(r.Context(), caller(r).TeamID, control.CreateParams{
		Template:   orDefault(req.Template, defaultTemplate),
		VCPUs:      orZeroOrInvalid(req.VCPUs),
		MemoryMB:   orZeroOrInvalid(req.MemoryMB),
		TimeoutSec: orDefault(req.TimeoutSec, timeout),
		Network:    networkIn(req.AllowInternetAccess, req.Network, s.control.DefaultNetwork()),
		AutoPause:  orDefault(req.AutoPause, autoPause),
		Envs:       req.Envs,
		Metadata:   req.Metadata,
		HostTags:   req.HostTags,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, sandboxOut(sb))
}

func (s *Server) listSandboxes(w http.ResponseWriter, r *http.Request) {
	f, err := listFilter(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sbs, err := s.control.ListSandboxes(r.Context(), caller(r).TeamID, f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]sandboxJSON, len(sbs))
	for i, sb := range sbs {
		out[i] = sandboxOut(sb)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getSandbox(w http.ResponseWriter, r *http.Request) {
	sb, err := s.control.GetSandbox(r.Context(), caller(r).TeamID, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sandboxOut(sb))
}

func (s *Server) destroySandbox(w http.ResponseWriter, r *http.Request) {
	if err := s.control.DestroySandbox(r.Context(), caller(r).TeamID, r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) pingSandbox(w http.ResponseWriter, r *http.Request) {
	if err := s.control.PingSandbox(r.Context(), caller(r).TeamID, r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) pauseSandbox(w http.ResponseWriter, r *http.Request) {
	sb, err := s.control.PauseSandbox(r.Context(), caller(r).TeamID, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sandboxOut(sb))
}

func (s *Server) resumeSandbox(w http.ResponseWriter, r *http.Request) {
	sb, err := s.control.ResumeSandbox(r.Context(), caller(r).TeamID, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sandboxOut(sb))
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// listFilter reads a list's query: status, repeated or comma-separated
// (none: all but stopped), and metadata as E2B encodes it, a query string
// of its own ("team=a&env=prod", escaped once more).
func listFilter(r *http.Request) (control.ListFilter, error) {
	q := r.URL.Query()
	var f control.ListFilter
	for _, v := range q["status"] {
		for st := range strings.SplitSeq(v, ",") {
			if st = strings.TrimSpace(st); st != "" {
				f.Statuses = append(f.Statuses, wrenn.SandboxStatus(st))
			}
		}
	}
	if m := q.Get("metadata"); m != "" {
		pairs, err := url.ParseQuery(m)
		if err != nil {
			return f, wrenn.Errorf(wrenn.EInvalid, "metadata: want key=value pairs joined by &, URL-encoded: %v", err)
		}
		f.Metadata = make(map[string]string, len(pairs))
		for k, vs := range pairs {
			f.Metadata[k] = vs[len(vs)-1]
		}
	}
	return f, nil
}
