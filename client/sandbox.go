package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// SandboxStatus is where a sandbox is in its life.
type SandboxStatus string

const (
	StatusPending SandboxStatus = "pending"
	StatusRunning SandboxStatus = "running"
	StatusPaused  SandboxStatus = "paused"
	StatusStopped SandboxStatus = "stopped"
	StatusError   SandboxStatus = "error"
	// StatusMissing: its host stopped heartbeating; it reads running again
	// if the host comes back in time, and error otherwise.
	StatusMissing SandboxStatus = "missing"
)

// NetworkPolicy is a sandbox's egress exceptions, as CIDRs or domain
// names; allow wins over deny.
type NetworkPolicy struct {
	AllowOut []string `json:"allow_out,omitempty"`
	DenyOut  []string `json:"deny_out,omitempty"`
}

// Sandbox is a sandbox as the API reports it.
type Sandbox struct {
	ID                  string            `json:"id"`
	Status              SandboxStatus     `json:"status"`
	Template            string            `json:"template"`
	VCPUs               int               `json:"vcpus"`
	MemoryMB            int               `json:"memory_mb"`
	TimeoutSec          int               `json:"timeout_sec"`
	GuestIP             string            `json:"guest_ip"`
	HostIP              string            `json:"host_ip"`
	CreatedAt           time.Time         `json:"created_at"`
	StartedAt           *time.Time        `json:"started_at"`
	LastActiveAt        *time.Time        `json:"last_active_at"`
	LastUpdated         time.Time         `json:"last_updated"`
	AutoPause           bool              `json:"auto_pause"`
	Metadata            map[string]string `json:"metadata"`
	AllowInternetAccess bool              `json:"allow_internet_access"`
	Network             NetworkPolicy     `json:"network"`
}

// CreateSandboxRequest is what CreateSandbox asks for. Zero values leave a
// field to the server: template "minimal", the template's sizes, a 300 s
// inactivity timeout that destroys, the operator's network policy.
type CreateSandboxRequest struct {
	Template string `json:"template,omitempty"`
	VCPUs    int    `json:"vcpus,omitempty"`
	MemoryMB int    `json:"memory_mb,omitempty"`
	// TimeoutSec is the seconds of inactivity after which the sandbox is
	// destroyed (or paused, with AutoPause); nil is the server's default,
	// a pointer to 0 never.
	TimeoutSec *int `json:"timeout_sec,omitempty"`
	// AutoPause makes inactivity pause the sandbox instead of destroying
	// it; the next call that needs it running resumes it.
	AutoPause *bool `json:"auto_pause,omitempty"`
	// Envs is the default environment of every command, process and
	// terminal of the sandbox. It is never reported back.
	Envs map[string]string `json:"envs,omitempty"`
	// Metadata is the team's labels, returned and filterable on list.
	Metadata            map[string]string `json:"metadata,omitempty"`
	AllowInternetAccess *bool             `json:"allow_internet_access,omitempty"`
	Network             *NetworkPolicy    `json:"network,omitempty"`
	// HostTags are tags the sandbox's host must all have (a fleet).
	HostTags []string `json:"host_tags,omitempty"`
}

// Ptr returns a pointer to v, for the optional fields of requests.
func Ptr[T any](v T) *T { return &v }

// CreateSandbox starts a sandbox and returns it running.
func (c *Client) CreateSandbox(ctx context.Context, req CreateSandboxRequest) (*Sandbox, error) {
	return c.sandbox(ctx, http.MethodPost, "/v1/sandboxes", req)
}

// GetSandbox returns one of the team's sandboxes; another team's, or none,
// is not found. A destroyed one stays readable, stopped, for a while.
func (c *Client) GetSandbox(ctx context.Context, id string) (*Sandbox, error) {
	return c.sandbox(ctx, http.MethodGet, sandboxPath(id, ""), nil)
}

// ListOptions filters ListSandboxes.
type ListOptions struct {
	// Status keeps sandboxes in these statuses; none is every status
	// but stopped.
	Status []SandboxStatus
	// Metadata keeps sandboxes whose metadata holds every pair.
	Metadata map[string]string
}

// ListSandboxes lists the team's sandboxes, newest first.
func (c *Client) ListSandboxes(ctx context.Context, opts ListOptions) ([]Sandbox, error) {
	q := url.Values{}
	if len(opts.Status) > 0 {
		ss := make([]string, len(opts.Status))
		for i, s := range opts.Status {
			ss[i] = string(s)
		}
		q.Set("status", strings.Join(ss, ","))
	}
	if len(opts.Metadata) > 0 {
		m := url.Values{}
		for k, v := range opts.Metadata {
			m.Set(k, v)
		}
		q.Set("metadata", m.Encode()) // escaped once more by q.Encode, as the API wants
	}
	var out []Sandbox
	if err := c.do(ctx, http.MethodGet, c.url("/v1/sandboxes", q), nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// DestroySandbox ends a sandbox and frees everything it held.
func (c *Client) DestroySandbox(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, c.url(sandboxPath(id, ""), nil), nil, nil)
}

// PauseSandbox snapshots a running sandbox to disk and releases its VM.
// A sandbox that is not running is a conflict.
func (c *Client) PauseSandbox(ctx context.Context, id string) (*Sandbox, error) {
	return c.sandbox(ctx, http.MethodPost, sandboxPath(id, "/pause"), nil)
}

// ResumeSandbox starts a paused sandbox again from its snapshot. A sandbox
// that is not paused is a conflict.
func (c *Client) ResumeSandbox(ctx context.Context, id string) (*Sandbox, error) {
	return c.sandbox(ctx, http.MethodPost, sandboxPath(id, "/resume"), nil)
}

// PingSandbox records activity, so the inactivity timeout starts again.
func (c *Client) PingSandbox(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, c.url(sandboxPath(id, "/ping"), nil), nil, nil)
}

func (c *Client) sandbox(ctx context.Context, method, path string, in any) (*Sandbox, error) {
	var sb Sandbox
	if err := c.do(ctx, method, c.url(path, nil), in, &sb); err != nil {
		return nil, err
	}
	return &sb, nil
}
