package client

import (
	"context"
	"net/http"
	"time"
)

// The agent link (issue 13): what a host's agent calls on the control
// plane's fleet listener (wrenn server --fleet-listen), not on the public
// API. The listener is TLS: give New a WithHTTPClient whose transport
// presents the agent's certificate (none before registration) and checks
// the control plane's. wrenn agent --join is built on these.

// RegisterHostRequest is what an agent registers with: its host's one-time
// registration token, its machine's specs, the address the control plane
// is to dial its RPC at, and a CSR (PEM) for a key it keeps.
type RegisterHostRequest struct {
	Token    string `json:"token"`
	Arch     string `json:"arch,omitempty"`
	CPUCores int    `json:"cpu_cores,omitempty"`
	MemoryMB int    `json:"memory_mb,omitempty"`
	DiskGB   int    `json:"disk_gb,omitempty"`
	Address  string `json:"address"`
	CSR      string `json:"csr"`
	// What the agent admits, its overcommit and reserve applied; both or
	// neither.
	CapacityVCPUs    *int `json:"capacity_vcpus,omitempty"`
	CapacityMemoryMB *int `json:"capacity_memory_mb,omitempty"`
}

// HostHeartbeatRequest is what a heartbeat reports: what the agent admits
// now (both or neither).
type HostHeartbeatRequest struct {
	CapacityVCPUs    *int `json:"capacity_vcpus,omitempty"`
	CapacityMemoryMB *int `json:"capacity_memory_mb,omitempty"`
}

// HostCertificate is a certificate the fleet's CA gave an agent, PEM,
// with the CA's own.
type HostCertificate struct {
	Certificate   string    `json:"certificate"`
	CACertificate string    `json:"ca_certificate"`
	ExpiresAt     time.Time `json:"certificate_expires_at"`
}

// RegisteredHost is a registration's answer: the host, now online, and
// its agent's certificate.
type RegisteredHost struct {
	Host Host `json:"host"`
	HostCertificate
}

// RegisterHost registers an agent with its host's registration token,
// which it uses up.
func (c *Client) RegisterHost(ctx context.Context, req RegisterHostRequest) (*RegisteredHost, error) {
	var out RegisteredHost
	if err := c.do(ctx, http.MethodPost, c.url("/v1/hosts/register", nil), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// HostHeartbeat tells the control plane host id's agent is alive; the
// transport must present that host's certificate.
func (c *Client) HostHeartbeat(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, c.url(hostPath(id, "/heartbeat"), nil), nil, nil)
}

// HostHeartbeatWith is HostHeartbeat reporting what the agent admits now,
// which the control plane's placement counts the host's sandboxes
// against.
func (c *Client) HostHeartbeatWith(ctx context.Context, id string, req HostHeartbeatRequest) error {
	return c.do(ctx, http.MethodPost, c.url(hostPath(id, "/heartbeat"), nil), req, nil)
}

// RenewHostCertificate has a new CSR (PEM) certified for host id's agent;
// the transport must present the host's current, valid certificate.
func (c *Client) RenewHostCertificate(ctx context.Context, id, csr string) (*HostCertificate, error) {
	var out HostCertificate
	if err := c.do(ctx, http.MethodPost, c.url(hostPath(id, "/certificate"), nil), struct {
		CSR string `json:"csr"`
	}{csr}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeHost revokes every certificate of host id's agent, at once, and
// returns the host, pending again with no registration token
// (RegenerateHostToken gives it one to join again). It needs WithToken, of
// whoever may change the host.
func (c *Client) RevokeHost(ctx context.Context, id string) (*Host, error) {
	var h Host
	if err := c.do(ctx, http.MethodPost, c.url(hostPath(id, "/revoke"), nil), nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}
