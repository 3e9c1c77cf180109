package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// TemplateType is what kind of template a Template is.
type TemplateType string

const (
	TemplateBase     TemplateType = "base"
	TemplateSnapshot TemplateType = "snapshot"
)

// Template is a base image or a team's snapshot, usable as the Template
// of CreateSandboxRequest.
type Template struct {
	Name      string       `json:"name"`
	Type      TemplateType `json:"type"`
	VCPUs     *int         `json:"vcpus"`
	MemoryMB  *int         `json:"memory_mb"`
	SizeBytes int64        `json:"size_bytes"`
	CreatedAt time.Time    `json:"created_at"`
}

// CreateSnapshotRequest is what CreateSnapshot asks for.
type CreateSnapshotRequest struct {
	SandboxID string `json:"sandbox_id"`
	// Name is the template's name; empty makes one up.
	Name string `json:"name,omitempty"`
	// Overwrite replaces a snapshot of the same name; without it a taken
	// name is a conflict.
	Overwrite bool `json:"-"`
}

// CreateSnapshot turns a running sandbox into a snapshot template; the
// sandbox is destroyed.
func (c *Client) CreateSnapshot(ctx context.Context, req CreateSnapshotRequest) (*Template, error) {
	q := url.Values{}
	if req.Overwrite {
		q.Set("overwrite", "true")
	}
	var t Template
	if err := c.do(ctx, http.MethodPost, c.url("/v1/snapshots", q), req, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// ListSnapshots lists the templates the team can use, of type typ ("" is
// every type).
func (c *Client) ListSnapshots(ctx context.Context, typ TemplateType) ([]Template, error) {
	var ts []Template
	if err := c.do(ctx, http.MethodGet, c.url("/v1/snapshots", optional("type", string(typ))), nil, &ts); err != nil {
		return nil, err
	}
	return ts, nil
}

// DeleteSnapshot deletes one of the team's snapshot templates.
func (c *Client) DeleteSnapshot(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, c.url("/v1/snapshots/"+url.PathEscape(name), nil), nil, nil)
}
