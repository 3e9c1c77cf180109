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
// says, the sandbox is consumed: it ends stopped.
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
	sb, err := s.sandboxes.GetSandbox(ctx, teamID, p.SandboxID)
	if err != nil {
		return nil, err
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
	agent, err := s.needSnapshotter()
	if err != nil {
		return nil, err
	}
	t := &wrenn.Template{Name: p.Name, TeamID: teamID, Type: wrenn.TemplateSnapshot, CreatedAt: s.nowUTC()}
	if err := agent.CreateSnapshot(ctx, sb.ID, t); err != nil {
		return nil, s.agentError(ctx, "snapshot the sandbox", sb.ID, err)
	}
	bg := context.WithoutCancel(ctx)
	if err := s.templates.PutTemplate(bg, t); err != nil {
		return nil, fmt.Errorf("record snapshot template: %w", err)
	}
	if _, err := s.sandboxes.TransitionSandbox(bg, teamID, sb.ID,
		[]wrenn.SandboxStatus{wrenn.StatusRunning}, wrenn.StatusStopped, s.nowUTC()); err != nil {
		s.log.ErrorContext(ctx, "record snapshotted sandbox stopped", slog.String(attrSandboxID, sb.ID), slog.Any(attrError, err))
	}
	s.log.InfoContext(ctx, "snapshot template created", slog.String(attrSandboxID, sb.ID), slog.String(attrTemplate, t.Name))
	return t, nil
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

// DeleteSnapshot removes one of the team's snapshot templates, files and
// record. Sandboxes made from it keep running.
func (s *Service) DeleteSnapshot(ctx context.Context, teamID, name string) error {
	t, err := s.templates.GetTemplate(ctx, teamID, name)
	if err != nil {
		return err
	}
	if t.Type == wrenn.TemplateBase {
		return wrenn.Errorf(wrenn.EConflict, "%q is a base template and cannot be deleted", name)
	}
	agent, err := s.needSnapshotter()
	if err != nil {
		return err
	}
	if err := agent.DeleteSnapshot(ctx, teamID, name); err != nil {
		return s.agentError(ctx, "delete the snapshot", "", err)
	}
	if err := s.templates.DeleteTemplate(context.WithoutCancel(ctx), teamID, name); err != nil {
		return fmt.Errorf("delete snapshot: %w", err)
	}
	return nil
}
