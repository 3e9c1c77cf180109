package control

import (
	"cmp"
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/wrennhq/wrenn"
)

// Config wires a Service.
type Config struct {
	Sandboxes SandboxStore
	Templates TemplateStore
	Quotas    QuotaStore
	// Agent runs the VMs. Nil means no host agent is available: every call
	// that needs one fails with wrenn.EHostAgent.
	Agent wrenn.Agent
	// HostID names Agent (its wrenn.HostInfo ID); every sandbox records
	// the host that holds it.
	HostID string
	Now    func() time.Time
	// After waits as time.After does, on the clock of Now; nil means
	// time.After. It paces the marks of activity of running operations.
	After  func(time.Duration) <-chan time.Time
	Logger *slog.Logger
	// Limits are the operator's bounds on one sandbox and on each team.
	Limits Limits
	// Network is the operator's egress settings.
	Network NetworkConfig
	// Stats reads the teams' recorded stats and usage (stats.go); nil
	// answers those requests with an internal error.
	Stats StatsStore
	// Fleet, if set, places sandboxes across hosts and reaches joined
	// hosts' agents (fleet.go); Agent, if set, is then one host of it.
	Fleet Fleet
}

// Limits are the operator's bounds. Zero sizes take the defaults; a zero
// in Quota is no limit.
type Limits struct {
	MaxVCPUs    int // vCPUs one sandbox may have; 0 means DefaultMaxVCPUs
	MaxMemoryMB int // memory one sandbox may have; 0 means DefaultMaxMemoryMB
	// Quota is every team's quota unless the team has its own
	// (wrenn.QuotaOverride, set with `wrenn admin quota set`).
	Quota wrenn.Quota
}

// NetworkConfig is the operator's say in sandboxes' egress policies.
type NetworkConfig struct {
	Default *wrenn.Network // the policy of a sandbox created without one; nil: wrenn.DefaultNetwork
	Opened  []netip.Prefix // non-public ranges sandboxes may be allowed to reach
}

// Service is the control plane's sandbox and template use cases.
type Service struct {
	sandboxes SandboxStore
	templates TemplateStore
	quotas    QuotaStore
	limits    Limits
	agent     wrenn.Agent
	hostID    string
	now       func() time.Time
	after     func(time.Duration) <-chan time.Time
	log       *slog.Logger
	network   NetworkConfig
	// lifecycle serialises the lifecycle changes of each sandbox
	// (lifetime.go).
	lifecycle keyedMutex
	stats     StatsStore
	fleet     Fleet
}

// NewService returns a Service.
func NewService(c Config) *Service {
	after := c.After
	if after == nil {
		after = time.After
	}
	c.Limits.MaxVCPUs = cmp.Or(c.Limits.MaxVCPUs, DefaultMaxVCPUs)
	c.Limits.MaxMemoryMB = cmp.Or(c.Limits.MaxMemoryMB, DefaultMaxMemoryMB)
	if c.Network.Default == nil {
		c.Network.Default = &wrenn.DefaultNetwork
	}
	return &Service{sandboxes: c.Sandboxes, templates: c.Templates, quotas: c.Quotas, limits: c.Limits, agent: c.Agent, hostID: c.HostID, now: c.Now, after: after, log: c.Logger,
		network: c.Network, stats: c.Stats, fleet: c.Fleet}
}

// Log attribute keys.
const (
	attrSandboxID = "sandbox_id"
	attrTeamID    = "team_id"
	attrTemplate  = "template"
	attrError     = "error"
	attrStatus    = "status"
)

var errNoAgent = wrenn.Errorf(wrenn.EHostAgent, "no host agent is available")

func (s *Service) needAgent() (wrenn.Agent, error) {
	if s.agent == nil {
		return nil, errNoAgent
	}
	return s.agent, nil
}

func (s *Service) needSnapshotter() (wrenn.Snapshotter, error) {
	a, err := s.needAgent()
	if err != nil {
		return nil, err
	}
	return asSnapshotter(a)
}

func asSnapshotter(a wrenn.Agent) (wrenn.Snapshotter, error) {
	sn, ok := a.(wrenn.Snapshotter)
	if !ok {
		return nil, wrenn.Errorf(wrenn.EHostAgent, "the host agent cannot pause, resume or snapshot sandboxes")
	}
	return sn, nil
}

// agentError turns an agent failure into what the client sees: the agent's
// own *wrenn.Error when it has one a client can act on (not found, conflict,
// invalid), otherwise a 502 with the detail only in the log.
func (s *Service) agentError(ctx context.Context, op, sandboxID string, err error) error {
	switch wrenn.ErrorCode(err) {
	case wrenn.ENotFound, wrenn.EConflict, wrenn.EInvalid, wrenn.ETooLarge, wrenn.EHostAgent, wrenn.EHostFull, wrenn.EQuotaExceeded:
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.log.ErrorContext(ctx, "host agent failed", slog.String("op", op), slog.String(attrSandboxID, sandboxID), slog.Any(attrError, err))
	return wrenn.Errorf(wrenn.EHostAgent, "host agent failed to %s", op)
}

func (s *Service) nowUTC() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// DefaultNetwork is the egress policy of a sandbox created without one.
func (s *Service) DefaultNetwork() wrenn.Network { return *s.network.Default }
