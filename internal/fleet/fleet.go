// Package fleet is the control plane's registry of hosts (issue 13):
// platform admins create regular hosts, and teams' owners their own BYOC
// hosts, each with a one-time registration token for its agent; hosts are
// listed, tagged, drained and deleted here. Who may do what is decided
// here, from the store on every call (an admin demoted a minute ago is no
// longer one, whatever their JWT says).
//
// Agents join over the agent link (link.go: registration, mutual TLS,
// heartbeats); placement.go chooses the host of each new sandbox and
// route.go reaches a joined host's agent for the control plane
// (internal/control). The registry itself touches no VM; internal/httpapi
// calls it.
package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/wrennhq/wrenn"
)

// Store keeps the hosts (internal/store implements it).
type Store interface {
	CreateHost(ctx context.Context, h *wrenn.Host) error
	GetHost(ctx context.Context, id string) (*wrenn.Host, error)
	ListHosts(ctx context.Context) ([]*wrenn.Host, error)
	ListTeamHosts(ctx context.Context, teamID string) ([]*wrenn.Host, error)
	HostByTokenHash(ctx context.Context, hash []byte) (*wrenn.Host, error)
	// SetHostToken replaces a pending host's token (EConflict otherwise).
	SetHostToken(ctx context.Context, id string, hash []byte, expires, at time.Time) (*wrenn.Host, error)
	SetHostDraining(ctx context.Context, id string, draining bool, at time.Time) (*wrenn.Host, error)
	AddHostTag(ctx context.Context, id, tag string, max int, at time.Time) error
	RemoveHostTag(ctx context.Context, id, tag string, at time.Time) error
	HostSandboxIDs(ctx context.Context, id string) ([]string, error)
	// DeleteHost refuses with a *wrenn.HostBusyError while sandboxes live
	// on the host, unless force; then it records them stopped.
	DeleteHost(ctx context.Context, id string, force bool, at time.Time) ([]string, error)
	// The agent link (link.go): revoking a host's certificates, alone or
	// returning the host to pending.
	RevokeHostCertificates(ctx context.Context, hostID string, at time.Time) (int, error)
	RevokeHost(ctx context.Context, id string, at time.Time) (*wrenn.Host, error)
}

// Roles answers who a user is: a platform admin, and their role in a team.
type Roles interface {
	IsAdmin(ctx context.Context, userID string) (bool, error)
	// MemberRole is "" for a user who is not a member.
	MemberRole(ctx context.Context, userID, teamID string) (string, error)
}

// Config wires a Service.
type Config struct {
	Hosts  Store
	Roles  Roles
	Now    func() time.Time
	Logger *slog.Logger
	// TokenTTL is how long a registration token is valid; 0 means
	// DefaultTokenTTL.
	TokenTTL time.Duration
	// EndSandboxes, if set, ends on host hostID the VMs of the sandboxes
	// ids, as far as it can reach the host: a forced delete calls it
	// before it records them stopped, so that they do not run on,
	// unreachable, on a host nothing may reach any more.
	EndSandboxes func(ctx context.Context, hostID string, ids []string)
}

// DefaultTokenTTL is how long a registration token is valid, as 0.1.5 has it.
const DefaultTokenTTL = time.Hour

// MaxTags bounds a host's tags.
const MaxTags = 64

// Service is the registry's use cases.
type Service struct {
	hosts    Store
	roles    Roles
	now      func() time.Time
	log      *slog.Logger
	tokenTTL time.Duration
	end      func(ctx context.Context, hostID string, ids []string)
}

// New returns a Service.
func New(c Config) *Service {
	if c.TokenTTL <= 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	return &Service{hosts: c.Hosts, roles: c.Roles, now: c.Now, log: c.Logger, tokenTTL: c.TokenTTL, end: c.EndSandboxes}
}

// Caller is the logged-in user a request acts for, and the team their
// token acts in.
type Caller struct {
	UserID string
	TeamID string
}

// Log attribute keys.
const (
	attrHostID = "host_id"
	attrType   = "type"
	attrTeamID = "team_id"
	attrUserID = "user_id"
)

// actor is a caller with what the store says of them now.
type actor struct {
	Caller
	admin bool
}

func (s *Service) actor(ctx context.Context, c Caller) (actor, error) {
	admin, err := s.roles.IsAdmin(ctx, c.UserID)
	if err != nil {
		return actor{}, fmt.Errorf("look up admin: %w", err)
	}
	return actor{Caller: c, admin: admin}, nil
}

// sees reports whether a may know of h at all: admins see every host,
// others their own team's BYOC hosts.
func (a actor) sees(h *wrenn.Host) bool {
	return a.admin || (h.Type == wrenn.HostBYOC && h.TeamID != "" && h.TeamID == a.TeamID)
}

var (
	errNotFound = wrenn.Errorf(wrenn.ENotFound, "host not found")
	errNotOwner = wrenn.Errorf(wrenn.EForbidden, "only platform admins and the team's owners may change its hosts")
)

// host returns host id as a may see it: not found unless a sees it, and
// with manage, forbidden unless a is an admin or an owner of its team.
func (s *Service) host(ctx context.Context, a actor, id string, manage bool) (*wrenn.Host, error) {
	if !wrenn.ValidID(wrenn.PrefixHost, id) {
		return nil, errNotFound
	}
	h, err := s.hosts.GetHost(ctx, id)
	if wrenn.ErrorCode(err) == wrenn.ENotFound || (err == nil && !a.sees(h)) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	if manage && !a.admin {
		if err := s.ownsTeam(ctx, a, h.TeamID); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// ownsTeam returns nil if a is an owner of the team, else EForbidden.
func (s *Service) ownsTeam(ctx context.Context, a actor, teamID string) error {
	role, err := s.roles.MemberRole(ctx, a.UserID, teamID)
	if err != nil {
		return fmt.Errorf("look up role: %w", err)
	}
	if role != wrenn.RoleOwner {
		return errNotOwner
	}
	return nil
}
