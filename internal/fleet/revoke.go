package fleet

import (
	"context"
	"log/slog"

	"github.com/wrennhq/wrenn"
)

// Revoke revokes a host's agent certificates at once (its agent can no
// longer heartbeat, renew or be dialled) and returns the host to pending,
// with no registration token: RegenerateToken then gives it one to join
// again. For a host whose machine or key is lost or compromised. Who may
// do it is who may change the host; a pending host is no change.
func (s *Service) Revoke(ctx context.Context, c Caller, id string) (*wrenn.Host, error) {
	a, err := s.actor(ctx, c)
	if err != nil {
		return nil, err
	}
	if _, err := s.host(ctx, a, id, true); err != nil {
		return nil, err
	}
	h, err := s.hosts.RevokeHost(ctx, id, s.now())
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "host revoked", slog.String(attrHostID, id), slog.String(attrUserID, c.UserID))
	return h, nil
}
