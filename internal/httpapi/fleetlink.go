package httpapi

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/fleet"
)

// The fleet listener (issue 13, the agent link): what hosts' agents call,
// served on its own TLS listener (wrenn server --fleet-listen), not on the
// public API: registration (a one-time token and a CSR), and, with the
// agent's client certificate, heartbeats and certificate renewal. The
// public API is plain HTTP behind load balancers that end TLS, so a client
// certificate would never reach it.

// NewFleetHandler returns the fleet listener's handler. Serve it with
// link.ListenerTLS().
func NewFleetHandler(link *fleet.Link, log *slog.Logger) http.Handler {
	s := &Server{log: log}
	f := &fleetAPI{s: s, link: link}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/hosts/register", f.register)
	mux.HandleFunc("POST /v1/hosts/{id}/heartbeat", f.agent(f.heartbeat))
	mux.HandleFunc("POST /v1/hosts/{id}/certificate", f.agent(f.renew))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, wrenn.Errorf(wrenn.ENotFound, "no route for %s %s on the fleet listener", r.Method, r.URL.Path))
	})
	return s.recoverer(s.logRequests(mux))
}

type fleetAPI struct {
	s    *Server
	link *fleet.Link
}

type issuedJSON struct {
	Certificate   string    `json:"certificate"`
	CACertificate string    `json:"ca_certificate"`
	ExpiresAt     time.Time `json:"certificate_expires_at"`
}

func issuedOut(c *fleet.Issued) issuedJSON {
	return issuedJSON{Certificate: string(c.CertPEM), CACertificate: string(c.CAPEM), ExpiresAt: c.NotAfter}
}

func (f *fleetAPI) register(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token    string `json:"token"`
		Arch     string `json:"arch"`
		CPUCores int    `json:"cpu_cores"`
		MemoryMB int    `json:"memory_mb"`
		DiskGB   int    `json:"disk_gb"`
		Address  string `json:"address"`
		CSR      string `json:"csr"`
		capacityJSON
	}
	if err := decodeJSON(w, r, &req); err != nil {
		f.s.writeError(w, r, err)
		return
	}
	capacity, err := req.capacity()
	if err != nil {
		f.s.writeError(w, r, err)
		return
	}
	h, issued, err := f.link.Register(r.Context(), fleet.RegisterRequest{Token: req.Token, CSR: []byte(req.CSR),
		Specs: wrenn.HostSpecs{Arch: req.Arch, CPUCores: req.CPUCores, MemoryMB: req.MemoryMB, DiskGB: req.DiskGB, Address: req.Address,
			Capacity: capacity}})
	if err != nil {
		f.s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		Host hostJSON `json:"host"`
		issuedJSON
	}{hostOut(h), issuedOut(issued)})
}

// agent admits a request whose TLS client certificate proves it comes
// from the agent of the host in its path.
func (f *fleetAPI) agent(next func(w http.ResponseWriter, r *http.Request, hostID string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			f.s.writeError(w, r, wrenn.Errorf(wrenn.EUnauthorized, "a host certificate is required"))
			return
		}
		id, err := f.link.AuthenticateAgent(r.Context(), r.TLS.PeerCertificates)
		if err != nil {
			f.s.writeError(w, r, err)
			return
		}
		if id != r.PathValue("id") {
			f.s.writeError(w, r, wrenn.Errorf(wrenn.EForbidden, "this certificate is host %s's, not %s's", id, r.PathValue("id")))
			return
		}
		next(w, r, id)
	}
}

// capacityJSON is what an agent reports it admits (issue 13), at
// registration and in heartbeats: both fields or neither (an agent older
// than the report).
type capacityJSON struct {
	CapacityVCPUs    *int `json:"capacity_vcpus"`
	CapacityMemoryMB *int `json:"capacity_memory_mb"`
}

func (c capacityJSON) capacity() (*wrenn.HostCapacity, error) {
	if c.CapacityVCPUs == nil && c.CapacityMemoryMB == nil {
		return nil, nil
	}
	if c.CapacityVCPUs == nil || c.CapacityMemoryMB == nil {
		return nil, wrenn.Errorf(wrenn.EInvalid, "capacity_vcpus and capacity_memory_mb go together: give both or neither")
	}
	return &wrenn.HostCapacity{VCPUs: *c.CapacityVCPUs, MemoryMB: *c.CapacityMemoryMB}, nil
}

// heartbeat takes an optional body: an agent that reports no capacity
// sends none.
func (f *fleetAPI) heartbeat(w http.ResponseWriter, r *http.Request, id string) {
	var req capacityJSON
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		f.s.writeError(w, r, jsonError(err))
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err := decodeJSON(w, r, &req); err != nil {
			f.s.writeError(w, r, err)
			return
		}
	}
	capacity, err := req.capacity()
	if err != nil {
		f.s.writeError(w, r, err)
		return
	}
	if _, err := f.link.Heartbeat(r.Context(), id, capacity); err != nil {
		f.s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *fleetAPI) renew(w http.ResponseWriter, r *http.Request, id string) {
	var req struct {
		CSR string `json:"csr"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		f.s.writeError(w, r, err)
		return
	}
	issued, err := f.link.Renew(r.Context(), id, []byte(req.CSR))
	if err != nil {
		f.s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, issuedOut(issued))
}

// revokeHost is on the public API (a logged-in user's): it revokes the
// host's agent certificates and returns it to pending.
func (s *Server) revokeHost(w http.ResponseWriter, r *http.Request) {
	h, err := s.hosts.Revoke(r.Context(), hostCaller(r), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, hostOut(h))
}
