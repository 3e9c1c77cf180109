package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// The registry of hosts (/v1/hosts): calls need WithToken (a login's JWT),
// and what they may do depends on who logged in: platform admins manage
// every host, a team's owners its BYOC hosts. A host's agent joins it with
// its registration token (hostlink.go).

// HostType says whose sandboxes a host runs.
type HostType string

const (
	HostRegular HostType = "regular" // shared; platform admins' to manage
	HostBYOC    HostType = "byoc"    // one team's own machine
)

// HostStatus is where a host is in its life.
type HostStatus string

const (
	HostPending     HostStatus = "pending" // created; its agent has not registered
	HostOnline      HostStatus = "online"
	HostOffline     HostStatus = "offline"
	HostDraining    HostStatus = "draining" // online, taking no new sandboxes
	HostUnreachable HostStatus = "unreachable"
)

// Host is a machine in the registry. Its specs (Arch, CPUCores, MemoryMB,
// DiskGB, Address) are unknown until its agent registers. Its capacity
// (CapacityVCPUs, CapacityMemoryMB) is what its agent reports it admits,
// its overcommit and reserve applied, at registration and in every
// heartbeat; placement counts the host's sandboxes against it.
type Host struct {
	ID               string     `json:"id"`
	Type             HostType   `json:"type"`
	TeamID           *string    `json:"team_id"` // BYOC hosts only
	Provider         *string    `json:"provider"`
	AvailabilityZone *string    `json:"availability_zone"`
	Arch             *string    `json:"arch"`
	CPUCores         *int       `json:"cpu_cores"`
	MemoryMB         *int       `json:"memory_mb"`
	DiskGB           *int       `json:"disk_gb"`
	Address          *string    `json:"address"`
	CapacityVCPUs    *int       `json:"capacity_vcpus"`     // what its agent admits; nil if not reported
	CapacityMemoryMB *int       `json:"capacity_memory_mb"` // likewise, MiB
	Status           HostStatus `json:"status"`
	// Draining: the host takes no new sandboxes, whatever its Status.
	Draining        bool       `json:"draining"`
	Tags            []string   `json:"tags"`
	LastHeartbeatAt *time.Time `json:"last_heartbeat_at"`
	CreatedBy       string     `json:"created_by"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
}

// CreateHostRequest is what CreateHost asks for.
type CreateHostRequest struct {
	Type             HostType `json:"type"`
	TeamID           string   `json:"team_id,omitempty"` // required for BYOC hosts
	Provider         string   `json:"provider,omitempty"`
	AvailabilityZone string   `json:"availability_zone,omitempty"`
}

// HostToken is a host with its one-time registration token, which the
// server shows only in this answer.
type HostToken struct {
	Host              Host      `json:"host"`
	RegistrationToken string    `json:"registration_token"`
	ExpiresAt         time.Time `json:"registration_token_expires_at"`
}

func hostPath(id, rest string) string { return "/v1/hosts/" + url.PathEscape(id) + rest }

// CreateHost creates a pending host and returns it with its registration
// token.
func (c *Client) CreateHost(ctx context.Context, req CreateHostRequest) (*HostToken, error) {
	var h HostToken
	if err := c.do(ctx, http.MethodPost, c.url("/v1/hosts", nil), req, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// ListHosts lists the hosts the caller sees: all for a platform admin,
// else their team's BYOC hosts.
func (c *Client) ListHosts(ctx context.Context) ([]Host, error) {
	var hs []Host
	if err := c.do(ctx, http.MethodGet, c.url("/v1/hosts", nil), nil, &hs); err != nil {
		return nil, err
	}
	return hs, nil
}

// GetHost returns a host; one the caller does not see is not found.
func (c *Client) GetHost(ctx context.Context, id string) (*Host, error) {
	var h Host
	if err := c.do(ctx, http.MethodGet, c.url(hostPath(id, ""), nil), nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// DeleteHost deletes a host. While sandboxes live on it the answer is an
// *Error with CodeHostHasSandboxes naming them in SandboxIDs, unless
// force: then they are destroyed with it.
func (c *Client) DeleteHost(ctx context.Context, id string, force bool) error {
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	return c.do(ctx, http.MethodDelete, c.url(hostPath(id, ""), q), nil, nil)
}

// HostDeletePreview is what a forced delete of Host would destroy.
type HostDeletePreview struct {
	Host       Host     `json:"host"`
	SandboxIDs []string `json:"sandbox_ids"`
}

// PreviewDeleteHost returns what DeleteHost with force would destroy,
// changing nothing.
func (c *Client) PreviewDeleteHost(ctx context.Context, id string) (*HostDeletePreview, error) {
	var p HostDeletePreview
	if err := c.do(ctx, http.MethodGet, c.url(hostPath(id, "/delete-preview"), nil), nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// RegenerateHostToken gives a pending host a new registration token; the
// old one stops working.
func (c *Client) RegenerateHostToken(ctx context.Context, id string) (*HostToken, error) {
	var h HostToken
	if err := c.do(ctx, http.MethodPost, c.url(hostPath(id, "/token"), nil), nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// ListHostTags returns a host's tags, sorted.
func (c *Client) ListHostTags(ctx context.Context, id string) ([]string, error) {
	var tags []string
	if err := c.do(ctx, http.MethodGet, c.url(hostPath(id, "/tags"), nil), nil, &tags); err != nil {
		return nil, err
	}
	return tags, nil
}

// AddHostTag tags a host; a tag it has is no change.
func (c *Client) AddHostTag(ctx context.Context, id, tag string) error {
	in := struct {
		Tag string `json:"tag"`
	}{tag}
	return c.do(ctx, http.MethodPost, c.url(hostPath(id, "/tags"), nil), in, nil)
}

// RemoveHostTag removes a tag from a host; a tag it lacks is no change.
func (c *Client) RemoveHostTag(ctx context.Context, id, tag string) error {
	return c.do(ctx, http.MethodDelete, c.url(hostPath(id, "/tags/"+url.PathEscape(tag)), nil), nil, nil)
}

// DrainHost stops new sandboxes going to a host; those it has stay.
func (c *Client) DrainHost(ctx context.Context, id string) (*Host, error) {
	var h Host
	if err := c.do(ctx, http.MethodPost, c.url(hostPath(id, "/drain"), nil), nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// UndrainHost lets a drained host take new sandboxes again.
func (c *Client) UndrainHost(ctx context.Context, id string) (*Host, error) {
	var h Host
	if err := c.do(ctx, http.MethodPost, c.url(hostPath(id, "/undrain"), nil), nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}
