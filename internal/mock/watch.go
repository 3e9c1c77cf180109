package mock

import (
	"context"

	"github.com/wrennhq/wrenn"
)

var _ wrenn.Watcher = (*WatchAgent)(nil)

// WatchAgent is a fake host agent that also watches sandboxes' files. It
// is a type of its own, as TerminalAgent is, so that a plain Agent stays
// one without the capability.
type WatchAgent struct {
	*Agent
	WatchDirFn func(ctx context.Context, id, path string, recursive bool) (wrenn.FileWatch, error)
}

func (a *WatchAgent) WatchDir(ctx context.Context, id, path string, recursive bool) (wrenn.FileWatch, error) {
	if a.WatchDirFn == nil {
		return nil, unset("WatchDirFn")
	}
	return a.WatchDirFn(ctx, id, path, recursive)
}
