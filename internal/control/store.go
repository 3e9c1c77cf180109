package control

import (
	"context"
	"time"

	"github.com/wrennhq/wrenn"
)

// SandboxStore persists sandbox records.
type SandboxStore interface {
	// CreateSandboxWithin records sb only if the team's quota (its own
	// over def) admits it, atomically with the count; else EQuotaExceeded.
	CreateSandboxWithin(ctx context.Context, sb *wrenn.Sandbox, def wrenn.Quota) error
	// ResumeSandboxWithin moves a paused sandbox to running only if the
	// team's quota admits it, atomically with the count.
	ResumeSandboxWithin(ctx context.Context, teamID, id string, def wrenn.Quota, at time.Time) (*wrenn.Sandbox, error)
	GetSandbox(ctx context.Context, teamID, id string) (*wrenn.Sandbox, error)
	// ListSandboxes returns the team's sandboxes whose status is one of
	// statuses (none: all), newest first.
	ListSandboxes(ctx context.Context, teamID string, statuses ...wrenn.SandboxStatus) ([]*wrenn.Sandbox, error)
	UpdateSandbox(ctx context.Context, sb *wrenn.Sandbox) error
	TransitionSandbox(ctx context.Context, teamID, id string, from []wrenn.SandboxStatus, to wrenn.SandboxStatus, at time.Time) (*wrenn.Sandbox, error)
	TouchSandbox(ctx context.Context, teamID, id string, at time.Time) error
	DeleteSandbox(ctx context.Context, teamID, id string) error
	// PauseIdleSandbox records a running sandbox paused by its inactivity
	// timeout unless it has had activity after idleSince; EConflict if it
	// has, or is not running.
	PauseIdleSandbox(ctx context.Context, teamID, id string, idleSince, at time.Time) (*wrenn.Sandbox, error)
}

// TemplateStore persists template records.
type TemplateStore interface {
	PutTemplate(ctx context.Context, t *wrenn.Template) error
	GetTemplate(ctx context.Context, teamID, name string) (*wrenn.Template, error)
	ListTemplates(ctx context.Context, teamID string, typ wrenn.TemplateType) ([]*wrenn.Template, error)
	DeleteTemplate(ctx context.Context, teamID, name string) error
}

// QuotaStore reads what a team may hold and holds.
type QuotaStore interface {
	TeamQuota(ctx context.Context, teamID string) (wrenn.QuotaOverride, error)
	TeamUsage(ctx context.Context, teamID string) (wrenn.Usage, error)
}
