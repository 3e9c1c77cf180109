package agent

import (
	"context"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/envd"
)

var _ wrenn.Watcher = (*Manager)(nil)

// WatchDir watches a directory of a running sandbox. A pause or destroy
// ends the watch, with the conflict that explains it.
func (m *Manager) WatchDir(ctx context.Context, id, path string, recursive bool) (wrenn.FileWatch, error) {
	sb, c, err := m.client(id)
	if err != nil {
		return nil, err
	}
	w, err := c.WatchDir(ctx, path, recursive)
	if err != nil {
		return nil, explain(sb, err)
	}
	return &watch{sb: sb, w: w}, nil
}

type watch struct {
	sb *sandbox
	w  *envd.Watch
}

func (w *watch) Recv() (wrenn.FileEvent, error) {
	e, err := w.w.Recv()
	return e, explain(w.sb, err)
}

func (w *watch) Close() error { return w.w.Close() }
