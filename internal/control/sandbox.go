package control

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/wrennhq/wrenn"
)

// Limits on what a sandbox may ask for. The maximums are the operator's
// (Limits); these are their defaults.
const (
	MinVCPUs           = 1
	DefaultMaxVCPUs    = 8
	MinMemoryMB        = 128
	DefaultMaxMemoryMB = 8192
)

// Limits on timeouts, in seconds; 0 means none. Both are checked before
// any conversion to a time.Duration, which would wrap a larger number.
const (
	MaxTimeoutSec     = 30 * 24 * 60 * 60 // a sandbox's inactivity timeout: 30 days
	MaxExecTimeoutSec = 24 * 60 * 60      // a command's timeout: a day
)

// Sizes of a sandbox from a template that does not fix them.
const (
	DefaultVCPUs    = 1
	DefaultMemoryMB = 512
)

// CreateParams is a request for a new sandbox. VCPUs and MemoryMB left 0
// take the template's sizes, or the defaults for a base template.
type CreateParams struct {
	Template   string
	VCPUs      int
	MemoryMB   int
	TimeoutSec int
	// Network is the sandbox's egress policy; nil takes the operator's
	// default (Config.Network).
	Network *wrenn.Network
	// AutoPause: inactivity pauses the sandbox instead of destroying it.
	AutoPause bool
	// Envs is the default environment of the sandbox's commands;
	// Metadata the team's labels for it.
	Envs     map[string]string
	Metadata map[string]string
	// HostTags are tags the sandbox's host must have (issue 13,
	// placement); none: any host.
	HostTags []string
}

func (p CreateParams) validate(l Limits) error {
	switch {
	case p.Template == "":
		return wrenn.Errorf(wrenn.EInvalid, "template must not be empty")
	case p.TimeoutSec < 0 || p.TimeoutSec > MaxTimeoutSec:
		return wrenn.Errorf(wrenn.EInvalid, "timeout_sec must be between 0 (no timeout) and %d (30 days)", MaxTimeoutSec)
	}
	if err := checkStringMap("envs", p.Envs, true); err != nil {
		return err
	}
	if err := checkStringMap("metadata", p.Metadata, false); err != nil {
		return err
	}
	if err := checkHostTags(p.HostTags); err != nil {
		return err
	}
	return l.checkSizes(p.VCPUs, p.MemoryMB)
}

// checkSizes checks sizes against the operator's maximums; 0 is a size
// left for the template to decide.
func (l Limits) checkSizes(vcpus, memoryMB int) error {
	switch {
	case vcpus != 0 && (vcpus < MinVCPUs || vcpus > l.MaxVCPUs):
		return wrenn.Errorf(wrenn.EInvalid, "vcpus must be between %d and %d (this server's maximum)", MinVCPUs, l.MaxVCPUs)
	case memoryMB != 0 && (memoryMB < MinMemoryMB || memoryMB > l.MaxMemoryMB):
		return wrenn.Errorf(wrenn.EInvalid, "memory_mb must be between %d and %d (this server's maximum)", MinMemoryMB, l.MaxMemoryMB)
	}
	return nil
}

// CreateSandbox validates p, records a pending sandbox if the team's quota
// admits it, has the agent start it and records it running. On any
// failure nothing is left behind.
func (s *Service) CreateSandbox(ctx context.Context, teamID string, p CreateParams) (*wrenn.Sandbox, error) {
	if err := p.validate(s.limits); err != nil {
		return nil, err
	}
	network := *s.network.Default
	if p.Network != nil {
		n, err := p.Network.Normalize(s.network.Opened)
		if err != nil {
			return nil, err
		}
		network = n
	}
	tmpl, err := s.templates.GetTemplate(ctx, teamID, p.Template)
	if wrenn.ErrorCode(err) == wrenn.ENotFound {
		return nil, wrenn.Errorf(wrenn.EInvalid, "template %q does not exist", p.Template)
	}
	if err != nil {
		return nil, fmt.Errorf("create sandbox: %w", err)
	}
	if err := applySizes(&p, tmpl); err != nil {
		return nil, err
	}
	if err := s.limits.checkSizes(p.VCPUs, p.MemoryMB); err != nil {
		// A snapshot template made before the maximums were lowered.
		return nil, wrenn.Errorf(wrenn.EInvalid, "template %q: %s", tmpl.Name, wrenn.ErrorMessage(err))
	}
	now := s.nowUTC()
	sb := &wrenn.Sandbox{
		ID:          wrenn.NewID(wrenn.PrefixSandbox),
		TeamID:      teamID,
		Template:    tmpl.Name,
		Status:      wrenn.StatusPending,
		VCPUs:       p.VCPUs,
		MemoryMB:    p.MemoryMB,
		TimeoutSec:  p.TimeoutSec,
		Network:     network,
		AutoPause:   p.AutoPause,
		Envs:        p.Envs,
		Metadata:    p.Metadata,
		CreatedAt:   now,
		LastUpdated: now,
	}
	log := s.log.With(slog.String(attrSandboxID, sb.ID), slog.String(attrTeamID, teamID))
	store, err := s.templateStore(ctx, tmpl) // travel.go
	if err != nil {
		return nil, fmt.Errorf("create sandbox: %w", err)
	}
	var agent wrenn.Agent
	var net wrenn.SandboxNet
	var refused []string // hosts whose agents found no room (fleet mode)
	for {
		hostID, a, err := s.placeCreate(ctx, teamID, p, refused, store)
		if err != nil {
			return nil, err
		}
		agent, sb.HostID = a, hostID
		if err := s.sandboxes.CreateSandboxWithin(ctx, sb, s.limits.Quota); err != nil {
			return nil, wrapUnlessCoded("create sandbox", err)
		}
		net, err = agent.CreateSandbox(ctx, wrenn.SandboxSpec{
			ID: sb.ID, TeamID: teamID, Template: tmpl.Name, TemplateTeamID: tmpl.TeamID,
			VCPUs: sb.VCPUs, MemoryMB: sb.MemoryMB, Network: sb.Network,
		})
		if err == nil {
			break
		}
		s.forget(ctx, log, sb)
		if s.fleet != nil && wrenn.ErrorCode(err) == wrenn.EHostFull && len(refused)+1 < placeAttempts && ctx.Err() == nil {
			log.InfoContext(ctx, "host refused the sandbox as full; placing it elsewhere", slog.String("host_id", hostID))
			refused = append(refused, hostID)
			continue
		}
		return nil, s.agentError(ctx, "create the sandbox", sb.ID, err)
	}
	now = s.nowUTC()
	sb.Status = wrenn.StatusRunning
	sb.GuestIP, sb.HostIP = net.GuestIP, net.HostIP
	sb.StartedAt, sb.LastActiveAt, sb.LastUpdated = &now, &now, now
	if err := s.sandboxes.UpdateSandbox(context.WithoutCancel(ctx), sb); err != nil {
		// The VM runs but cannot be recorded: stop it rather than leak it.
		s.destroyQuietly(ctx, log, agent, sb.ID)
		s.forget(ctx, log, sb)
		return nil, fmt.Errorf("record running sandbox: %w", err)
	}
	log.InfoContext(ctx, "sandbox created", slog.String(attrTemplate, sb.Template))
	return sb, nil
}

// applySizes fills in the sizes p leaves out. A snapshot template's sizes
// are those of the sandbox it was made from: its memory and devices are
// restored as they were, so a request for other sizes is refused rather
// than ignored.
func applySizes(p *CreateParams, t *wrenn.Template) error {
	if t.VCPUs == nil || t.MemoryMB == nil {
		p.VCPUs = cmp.Or(p.VCPUs, DefaultVCPUs)
		p.MemoryMB = cmp.Or(p.MemoryMB, DefaultMemoryMB)
		return nil
	}
	if (p.VCPUs != 0 && p.VCPUs != *t.VCPUs) || (p.MemoryMB != 0 && p.MemoryMB != *t.MemoryMB) {
		return wrenn.Errorf(wrenn.EInvalid,
			"template %q is a snapshot of a sandbox with %d vcpus and %d MiB of memory; a sandbox made from it has those sizes (leave vcpus and memory_mb out, or give those)",
			t.Name, *t.VCPUs, *t.MemoryMB)
	}
	p.VCPUs, p.MemoryMB = *t.VCPUs, *t.MemoryMB
	return nil
}

// forget removes the record of a sandbox whose creation failed.
func (s *Service) forget(ctx context.Context, log *slog.Logger, sb *wrenn.Sandbox) {
	if err := s.sandboxes.DeleteSandbox(context.WithoutCancel(ctx), sb.TeamID, sb.ID); err != nil {
		log.ErrorContext(ctx, "remove record of failed sandbox", slog.Any(attrError, err))
	}
}

func (s *Service) destroyQuietly(ctx context.Context, log *slog.Logger, agent wrenn.Agent, id string) {
	if err := agent.DestroySandbox(context.WithoutCancel(ctx), id); err != nil {
		log.ErrorContext(ctx, "destroy sandbox", slog.Any(attrError, err))
	}
}

// GetSandbox returns one of the team's sandboxes. Looking counts as
// activity: it keeps a running sandbox from its inactivity timeout.
func (s *Service) GetSandbox(ctx context.Context, teamID, id string) (*wrenn.Sandbox, error) {
	sb, err := s.sandboxes.GetSandbox(ctx, teamID, id)
	if err != nil {
		return nil, err
	}
	if sb.Status == wrenn.StatusRunning {
		if err := s.touch(ctx, sb); err != nil {
			return nil, err
		}
	}
	return sb, nil
}

// PingSandbox records activity on the team's running sandbox, so its
// inactivity timeout starts again. A sandbox that is not running is
// EConflict.
func (s *Service) PingSandbox(ctx context.Context, teamID, id string) error {
	sb, err := s.sandboxes.GetSandbox(ctx, teamID, id)
	if err != nil {
		return err
	}
	if sb.Status != wrenn.StatusRunning {
		return wrenn.Errorf(wrenn.EConflict, "sandbox is %s, not running", sb.Status)
	}
	return s.touch(ctx, sb)
}

// touchResolution bounds how often activity is written: a sandbox polled
// in a loop is not a write per poll.
const touchResolution = time.Second

// touch records activity on a running sandbox.
func (s *Service) touch(ctx context.Context, sb *wrenn.Sandbox) error {
	now := s.nowUTC()
	if sb.LastActiveAt != nil && now.Sub(*sb.LastActiveAt) < touchResolution {
		return nil
	}
	if err := s.sandboxes.TouchSandbox(ctx, sb.TeamID, sb.ID, now); err != nil {
		return fmt.Errorf("touch sandbox: %w", err)
	}
	sb.LastActiveAt = &now
	return nil
}

// DestroySandbox frees the sandbox's resources. Its record stays, stopped,
// for a retention period (ReconcilerConfig.StoppedRetention), so that it
// can still be read; a sandbox already stopped is not found.
func (s *Service) DestroySandbox(ctx context.Context, teamID, id string) error {
	unlock := s.lifecycle.lock(id)
	defer unlock()
	sb, err := s.sandboxes.GetSandbox(ctx, teamID, id)
	if err != nil {
		return err
	}
	if sb.Status == wrenn.StatusStopped {
		return wrenn.Errorf(wrenn.ENotFound, "sandbox not found (it was destroyed)")
	}
	agent, err := s.destroyAgent(ctx, sb) // travel.go
	if err == nil {
		err = agent.DestroySandbox(ctx, id)
	}
	if err != nil {
		if !awayHost(sb, err) {
			return s.agentError(ctx, "destroy the sandbox", id, err)
		}
		// Its host is lost (hostloss.go): the record says stopped now,
		// and the host's reconciler ends the VM if the host comes back.
		s.log.WarnContext(ctx, "destroying a sandbox whose host cannot be reached: recorded stopped, to be ended on the host when it returns",
			slog.String(attrSandboxID, id), slog.String("host_id", sb.HostID), slog.Any(attrError, err))
	}
	if _, err := s.sandboxes.TransitionSandbox(context.WithoutCancel(ctx), teamID, id,
		[]wrenn.SandboxStatus{wrenn.StatusPending, wrenn.StatusRunning, wrenn.StatusPaused, wrenn.StatusError, wrenn.StatusMissing},
		wrenn.StatusStopped, s.nowUTC()); err != nil && wrenn.ErrorCode(err) != wrenn.EConflict {
		return fmt.Errorf("destroy sandbox: %w", err)
	}
	s.log.InfoContext(ctx, "sandbox destroyed", slog.String(attrSandboxID, id), slog.String(attrTeamID, teamID))
	return nil
}

// running returns the sandbox if it is running, or once it has resumed
// it if its inactivity timeout paused it, and marks it active; otherwise
// a not-found or conflict error.
func (s *Service) running(ctx context.Context, teamID, id string) (*wrenn.Sandbox, wrenn.Agent, error) {
	unlock := s.lifecycle.lock(id)
	defer unlock()
	sb, err := s.sandboxes.GetSandbox(ctx, teamID, id)
	if err != nil {
		return nil, nil, err
	}
	if sb.Status == wrenn.StatusPaused && sb.AutoPaused {
		if sb, err = s.resumeLocked(ctx, teamID, id); err != nil {
			return nil, nil, err
		}
		s.log.InfoContext(ctx, "resumed a sandbox its inactivity timeout paused", slog.String(attrSandboxID, id))
	}
	return s.runningRecord(ctx, sb)
}

// runningRecord is running for a record already read, without resuming.
func (s *Service) runningRecord(ctx context.Context, sb *wrenn.Sandbox) (*wrenn.Sandbox, wrenn.Agent, error) {
	if sb.Status == wrenn.StatusMissing {
		return nil, nil, errMissing(sb)
	}
	if sb.Status != wrenn.StatusRunning {
		return nil, nil, wrenn.Errorf(wrenn.EConflict, "sandbox is %s, not running", describe(sb))
	}
	agent, err := s.agentFor(ctx, sb.HostID)
	if err != nil {
		return nil, nil, err
	}
	if err := s.touch(ctx, sb); err != nil {
		return nil, nil, err
	}
	return sb, agent, nil
}

// PauseSandbox snapshots a running sandbox to disk and releases its
// running resources.
func (s *Service) PauseSandbox(ctx context.Context, teamID, id string) (*wrenn.Sandbox, error) {
	unlock := s.lifecycle.lock(id)
	defer unlock()
	sb, err := s.sandboxes.GetSandbox(ctx, teamID, id)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.runningRecord(ctx, sb); err != nil {
		return nil, err
	}
	agent, err := s.snapshotterFor(ctx, sb.HostID)
	if err != nil {
		return nil, err
	}
	if err := agent.PauseSandbox(ctx, id); err != nil {
		return nil, s.agentError(ctx, "pause the sandbox", id, err)
	}
	sb, err = s.sandboxes.TransitionSandbox(context.WithoutCancel(ctx), teamID, id,
		[]wrenn.SandboxStatus{wrenn.StatusRunning}, wrenn.StatusPaused, s.nowUTC())
	if err != nil {
		return nil, fmt.Errorf("record paused sandbox: %w", err)
	}
	return sb, nil
}

// ResumeSandbox restores a paused sandbox. The team's quota is checked
// again, since a paused sandbox holds no CPU or memory: the record moves
// to running if the quota admits it, atomically with the count, before
// the agent is asked, and back to paused if the agent cannot resume it.
func (s *Service) ResumeSandbox(ctx context.Context, teamID, id string) (*wrenn.Sandbox, error) {
	unlock := s.lifecycle.lock(id)
	defer unlock()
	return s.resumeLocked(ctx, teamID, id)
}

// resumeLocked is ResumeSandbox with the sandbox's lifecycle lock held.
func (s *Service) resumeLocked(ctx context.Context, teamID, id string) (*wrenn.Sandbox, error) {
	sb, err := s.sandboxes.GetSandbox(ctx, teamID, id)
	if err != nil {
		return nil, err
	}
	if sb.Status != wrenn.StatusPaused {
		return nil, wrenn.Errorf(wrenn.EConflict, "sandbox is %s, not paused", sb.Status)
	}
	if err := s.checkResumable(ctx, sb); err != nil { // travel.go
		return nil, err
	}
	sb, err = s.sandboxes.ResumeSandboxWithin(ctx, teamID, id, s.limits.Quota, s.nowUTC())
	if wrenn.ErrorCode(err) == wrenn.EConflict {
		return nil, wrenn.Errorf(wrenn.EConflict, "%s, not paused", wrenn.ErrorMessage(err))
	}
	if err != nil {
		return nil, wrapUnlessCoded("resume sandbox", err)
	}
	hostID, net, err := s.resumeSandbox(ctx, sb, wrenn.SandboxSpec{
		ID: sb.ID, TeamID: teamID, Template: sb.Template, VCPUs: sb.VCPUs, MemoryMB: sb.MemoryMB, Network: sb.Network,
	})
	if err != nil {
		if _, terr := s.sandboxes.TransitionSandbox(context.WithoutCancel(ctx), teamID, id,
			[]wrenn.SandboxStatus{wrenn.StatusRunning}, wrenn.StatusPaused, s.nowUTC()); terr != nil {
			s.log.ErrorContext(ctx, "record sandbox paused again after a failed resume", slog.String(attrSandboxID, id),
				slog.Any(attrError, terr))
		}
		return nil, s.agentError(ctx, "resume the sandbox", id, err)
	}
	now := s.nowUTC()
	sb.Status = wrenn.StatusRunning
	sb.GuestIP, sb.HostIP = net.GuestIP, net.HostIP
	if s.fleet == nil {
		sb.HostID = s.hostID // one agent: whatever the record said, it is this one's
	} else {
		sb.HostID = hostID // another host of its shared store's, maybe
	}
	sb.LastActiveAt, sb.LastUpdated = &now, now
	if err := s.sandboxes.UpdateSandbox(context.WithoutCancel(ctx), sb); err != nil {
		return nil, fmt.Errorf("record resumed sandbox: %w", err)
	}
	return sb, nil
}

// wrapUnlessCoded returns a *wrenn.Error as is, for the client, and wraps
// anything else with op.
func wrapUnlessCoded(op string, err error) error {
	if _, ok := errors.AsType[*wrenn.Error](err); ok {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// CheckRunning reports, as an error, why the sandbox cannot take work now:
// not found, not running, or no agent. Transports call it before they
// commit to a long-lived exchange such as a WebSocket.
func (s *Service) CheckRunning(ctx context.Context, teamID, id string) error {
	_, _, err := s.running(ctx, teamID, id)
	return err
}
