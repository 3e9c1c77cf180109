package control

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/wrennhq/wrenn"
)

// SnapshotParams asks for a template made of a running sandbox.
type SnapshotParams struct {
	SandboxID string
	Name      string // empty: one is generated
	Overwrite bool
}

// CreateSnapshot turns a running sandbox into a team template. As the API
// says, the sandbox is consumed: it ends stopped, or in error if the agent
// made the template but it could not be recorded.
func (s *Service) CreateSnapshot(ctx context.Context, teamID string, p SnapshotParams) (*wrenn.Template, error) {
	if p.SandboxID == "" {
		return nil, wrenn.Errorf(wrenn.EInvalid, "sandbox_id must not be empty")
	}
	if p.Name == "" {
		p.Name = wrenn.NewID("snap-")
	}
	if err := wrenn.ValidateTemplateName(p.Name); err != nil {
		return nil, err
	}
	unlock := s.lifecycle.lock(p.SandboxID)
	defer unlock()
	sb, err := s.sandboxes.GetSandbox(ctx, teamID, p.SandboxID)
	if err != nil {
		return nil, err
	}
	if sb.Status == wrenn.StatusMissing {
		return nil, errMissing(sb)
	}
	if sb.Status != wrenn.StatusRunning {
		return nil, wrenn.Errorf(wrenn.EConflict, "sandbox is %s, not running", sb.Status)
	}
	existing, err := s.templates.GetTemplate(ctx, teamID, p.Name)
	switch {
	case err == nil && existing.Type == wrenn.TemplateBase:
		return nil, wrenn.Errorf(wrenn.EConflict, "%q is a base template", p.Name)
	case err == nil && !p.Overwrite:
		return nil, wrenn.Errorf(wrenn.EConflict, "template %q already exists", p.Name)
	case err != nil && wrenn.ErrorCode(err) != wrenn.ENotFound:
		return nil, fmt.Errorf("create snapshot: %w", err)
	}
	agent, err := s.snapshotterFor(ctx, sb.HostID)
	if err != nil {
		return nil, err
	}
	if err := s.admitSnapshot(ctx, sb, existing); err != nil {
		return nil, err
	}
	t := &wrenn.Template{Name: p.Name, TeamID: teamID, Type: wrenn.TemplateSnapshot, CreatedAt: s.nowUTC()}
	if err := agent.CreateSnapshot(ctx, sb.ID, t); err != nil {
		return nil, s.agentError(ctx, "snapshot the sandbox", sb.ID, err)
	}
	bg := context.WithoutCancel(ctx)
	if err := s.templates.PutTemplate(bg, t); err != nil {
		s.abandonSnapshot(bg, agent, sb, t.Name, existing != nil)
		return nil, fmt.Errorf("record snapshot template: %w", err)
	}
	s.recordTemplateStore(bg, t, sb.HostID) // travel.go
	s.settleConsumed(bg, sb, wrenn.StatusStopped)
	s.log.InfoContext(ctx, "snapshot template created", slog.String(attrSandboxID, sb.ID), slog.String(attrTemplate, t.Name))
	return t, nil
}

// admitSnapshot checks that a template of sb, replacing existing (nil
// for none), fits the team's snapshot storage quota. The template's size
// is known only once made, and making it consumes the sandbox, so the
// check comes first and counts it at the sandbox's memory size, what its
// RAM image may take; the record then holds the size it really has.
// Snapshots of one team taken at the same moment may together pass the
// quota by what they hold, once: the next one is refused.
func (s *Service) admitSnapshot(ctx context.Context, sb *wrenn.Sandbox, existing *wrenn.Template) error {
	o, err := s.quotas.TeamQuota(ctx, sb.TeamID)
	if err != nil {
		return fmt.Errorf("create snapshot: %w", err)
	}
	q := o.Apply(s.limits.Quota)
	if q.SnapshotMB == 0 {
		return nil
	}
	u, err := s.quotas.TeamUsage(ctx, sb.TeamID)
	if err != nil {
		return fmt.Errorf("create snapshot: %w", err)
	}
	if existing != nil && existing.TeamID == sb.TeamID {
		u.SnapshotBytes -= existing.SizeBytes // replaced, so freed
	}
	return q.AdmitSnapshot(u, int64(sb.MemoryMB)*wrenn.MiB)
}

// abandonSnapshot undoes what the agent made of sb when the template
// cannot be recorded. Its files go, since no record could ever lead to
// them; a record of the template they replaced goes too, since its files
// are gone. The sandbox is consumed all the same (its VM is gone) without
// becoming a template: it ends in error. Failures are logged: the caller
// reports the one that matters.
func (s *Service) abandonSnapshot(ctx context.Context, agent wrenn.Snapshotter, sb *wrenn.Sandbox, name string, replaced bool) {
	log := s.log.With(slog.String(attrSandboxID, sb.ID), slog.String(attrTemplate, name))
	if err := agent.DeleteSnapshot(ctx, sb.TeamID, name); err != nil {
		log.ErrorContext(ctx, "delete the files of an unrecorded snapshot", slog.Any(attrError, err))
	}
	if replaced {
		if err := s.templates.DeleteTemplate(ctx, sb.TeamID, name); err != nil && wrenn.ErrorCode(err) != wrenn.ENotFound {
			log.ErrorContext(ctx, "delete the record of a replaced snapshot", slog.Any(attrError, err))
		}
	}
	s.settleConsumed(ctx, sb, wrenn.StatusError)
}

// settleConsumed records the end of a sandbox the agent made a template
// of: stopped when the template was recorded, error when it was not.
func (s *Service) settleConsumed(ctx context.Context, sb *wrenn.Sandbox, to wrenn.SandboxStatus) {
	if _, err := s.sandboxes.TransitionSandbox(ctx, sb.TeamID, sb.ID,
		[]wrenn.SandboxStatus{wrenn.StatusRunning}, to, s.nowUTC()); err != nil {
		s.log.ErrorContext(ctx, "record the end of a snapshotted sandbox", slog.String(attrSandboxID, sb.ID),
			slog.String(attrStatus, string(to)), slog.Any(attrError, err))
	}
}

// ListTemplates returns the base templates and the team's own.
func (s *Service) ListTemplates(ctx context.Context, teamID string, typ wrenn.TemplateType) ([]*wrenn.Template, error) {
	switch typ {
	case "", wrenn.TemplateBase, wrenn.TemplateSnapshot:
	default:
		return nil, wrenn.Errorf(wrenn.EInvalid, "type must be %q or %q", wrenn.TemplateBase, wrenn.TemplateSnapshot)
	}
	return s.templates.ListTemplates(ctx, teamID, typ)
}

// DeleteSnapshot removes one of the team's snapshot templates, record and
// files. Sandboxes made from it keep running. The record goes first, so
// that no record ever names files that are gone; files a failed delete
// leaves behind are the reconciler's to remove.
func (s *Service) DeleteSnapshot(ctx context.Context, teamID, name string) error {
	t, err := s.templates.GetTemplate(ctx, teamID, name)
	if err != nil {
		return err
	}
	if t.Type == wrenn.TemplateBase {
		return wrenn.Errorf(wrenn.EConflict, "%q is a base template and cannot be deleted", name)
	}
	// One host of the shared store the template is kept in, if any
	// (travel.go), else this control plane's own agent.
	agent, err := s.storeSnapshotter(ctx, t)
	if err == nil && agent == nil {
		agent, err = s.needSnapshotter()
	}
	if err != nil {
		return err
	}
	if err := s.templates.DeleteTemplate(ctx, teamID, name); err != nil {
		return fmt.Errorf("delete snapshot: %w", err)
	}
	if err := agent.DeleteSnapshot(context.WithoutCancel(ctx), teamID, name); err != nil {
		s.log.WarnContext(ctx, "delete snapshot files; the reconciler will", slog.String(attrTeamID, teamID),
			slog.String(attrTemplate, name), slog.Any(attrError, err))
	}
	return nil
}
