package control

import (
	"context"

	"github.com/wrennhq/wrenn"
)

// WatchDir watches the directory p of the caller's running sandbox, and
// everything below it if recursive. An open watch is not activity: a
// sandbox nobody works in goes at its timeout, and its watch ends then.
func (s *Service) WatchDir(ctx context.Context, teamID, id, p string, recursive bool) (wrenn.FileWatch, error) {
	if err := ValidatePath(p); err != nil {
		return nil, err
	}
	_, agent, err := s.running(ctx, teamID, id)
	if err != nil {
		return nil, err
	}
	wt, ok := agent.(wrenn.Watcher)
	if !ok {
		return nil, wrenn.Errorf(wrenn.EHostAgent, "the host agent cannot watch a sandbox's files")
	}
	w, err := wt.WatchDir(ctx, id, p, recursive)
	if err != nil {
		return nil, s.agentError(ctx, "watch the directory", id, err)
	}
	return w, nil
}
