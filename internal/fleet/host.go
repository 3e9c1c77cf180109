package fleet

import (
	"context"
	"log/slog"
	"unicode"
	"unicode/utf8"

	"github.com/wrennhq/wrenn"
)

// CreateRequest is what a new host is made of.
type CreateRequest struct {
	Type             wrenn.HostType
	TeamID           string // BYOC only: the owning team
	Provider         string // optional, e.g. aws, hetzner, bare-metal
	AvailabilityZone string // optional
}

// maxLabelLen bounds provider, availability zone and tags.
const maxLabelLen = 64

func (r CreateRequest) validate() error {
	switch r.Type {
	case "":
		return wrenn.Errorf(wrenn.EInvalid, "type is required: regular or byoc")
	case wrenn.HostRegular:
		if r.TeamID != "" {
			return wrenn.Errorf(wrenn.EInvalid, "team_id is only for byoc hosts")
		}
	case wrenn.HostBYOC:
		if r.TeamID == "" {
			return wrenn.Errorf(wrenn.EInvalid, "team_id is required for byoc hosts")
		}
	default:
		return wrenn.Errorf(wrenn.EInvalid, "type must be regular or byoc")
	}
	if err := validLabel("provider", r.Provider); err != nil {
		return err
	}
	return validLabel("availability_zone", r.AvailabilityZone)
}

// validLabel checks a free-form optional label: printable, at most
// maxLabelLen characters.
func validLabel(name, v string) error {
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxLabelLen {
		return wrenn.Errorf(wrenn.EInvalid, "%s must be at most %d characters of UTF-8", name, maxLabelLen)
	}
	for _, r := range v {
		if !unicode.IsPrint(r) {
			return wrenn.Errorf(wrenn.EInvalid, "%s must be printable", name)
		}
	}
	return nil
}

// Create records a pending host and returns it with its registration
// token, which exists nowhere else: only its hash is kept. A regular host
// is an admin's to create; a BYOC host an admin's or, for the team their
// token acts in, one of its owners'.
func (s *Service) Create(ctx context.Context, c Caller, req CreateRequest) (*wrenn.Host, string, error) {
	if err := req.validate(); err != nil {
		return nil, "", err
	}
	a, err := s.actor(ctx, c)
	if err != nil {
		return nil, "", err
	}
	if !a.admin {
		switch {
		case req.Type == wrenn.HostRegular:
			return nil, "", wrenn.Errorf(wrenn.EForbidden, "only platform admins may create regular hosts")
		case req.TeamID != c.TeamID:
			return nil, "", wrenn.Errorf(wrenn.EForbidden, "a byoc host is created for the team your login acts in")
		}
		if err := s.ownsTeam(ctx, a, req.TeamID); err != nil {
			return nil, "", err
		}
	}
	token, hash := newToken()
	now := s.now().UTC()
	expires := now.Add(s.tokenTTL)
	h := &wrenn.Host{
		ID: wrenn.NewID(wrenn.PrefixHost), Type: req.Type, TeamID: req.TeamID,
		Provider: req.Provider, AvailabilityZone: req.AvailabilityZone,
		Status: wrenn.HostPending, CreatedBy: c.UserID, CreatedAt: now, UpdatedAt: now,
		TokenHash: hash, TokenExpiresAt: &expires,
	}
	if err := s.hosts.CreateHost(ctx, h); err != nil {
		return nil, "", err
	}
	s.log.InfoContext(ctx, "host created", slog.String(attrHostID, h.ID), slog.String(attrType, string(h.Type)),
		slog.String(attrTeamID, h.TeamID), slog.String(attrUserID, c.UserID))
	return h, token, nil
}

// List returns the hosts the caller sees, oldest first: every host for an
// admin, else the BYOC hosts of the team their login acts in.
func (s *Service) List(ctx context.Context, c Caller) ([]*wrenn.Host, error) {
	a, err := s.actor(ctx, c)
	if err != nil {
		return nil, err
	}
	if a.admin {
		return s.hosts.ListHosts(ctx)
	}
	return s.hosts.ListTeamHosts(ctx, c.TeamID)
}

// Get returns a host the caller sees; any other is not found.
func (s *Service) Get(ctx context.Context, c Caller, id string) (*wrenn.Host, error) {
	a, err := s.actor(ctx, c)
	if err != nil {
		return nil, err
	}
	return s.host(ctx, a, id, false)
}

// DeletePreview returns the host and what a forced delete would destroy:
// the sandboxes that live on it. It changes nothing.
func (s *Service) DeletePreview(ctx context.Context, c Caller, id string) (*wrenn.Host, []string, error) {
	a, err := s.actor(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	h, err := s.host(ctx, a, id, true)
	if err != nil {
		return nil, nil, err
	}
	ids, err := s.hosts.HostSandboxIDs(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	return h, ids, nil
}

// Delete removes a host from the registry. While sandboxes live on it the
// answer is a *wrenn.HostBusyError naming them, unless force: then they
// are destroyed with it and their IDs returned.
// Their VMs are ended on the host first (Config.EndSandboxes), if it can
// be reached; the host's agent certificates are revoked, so that nothing
// reaches it after.
func (s *Service) Delete(ctx context.Context, c Caller, id string, force bool) ([]string, error) {
	a, err := s.actor(ctx, c)
	if err != nil {
		return nil, err
	}
	if _, err := s.host(ctx, a, id, true); err != nil {
		return nil, err
	}
	if force && s.end != nil {
		ids, err := s.hosts.HostSandboxIDs(ctx, id)
		if err != nil {
			return nil, err
		}
		if len(ids) > 0 {
			s.end(ctx, id, ids)
		}
	}
	ended, err := s.hosts.DeleteHost(ctx, id, force, s.now())
	if err != nil {
		return nil, err
	}
	// The agent link (link.go): the host's certificates are revoked. (A
	// deleted host's agent is refused anyway: its host no longer exists.)
	if _, err := s.hosts.RevokeHostCertificates(ctx, id, s.now()); err != nil {
		s.log.ErrorContext(ctx, "revoke deleted host's certificates", slog.String(attrHostID, id), slog.Any("error", err))
	}
	s.log.InfoContext(ctx, "host deleted", slog.String(attrHostID, id), slog.String(attrUserID, c.UserID),
		slog.Int("sandboxes_stopped", len(ended)))
	return ended, nil
}

// SetDraining drains a host (no new sandboxes go to it; those it has stay)
// or ends its drain, and returns it. Either is no change if already so.
func (s *Service) SetDraining(ctx context.Context, c Caller, id string, draining bool) (*wrenn.Host, error) {
	a, err := s.actor(ctx, c)
	if err != nil {
		return nil, err
	}
	if _, err := s.host(ctx, a, id, true); err != nil {
		return nil, err
	}
	return s.hosts.SetHostDraining(ctx, id, draining, s.now())
}
