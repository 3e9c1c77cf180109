package envd

import (
	"context"
	"fmt"
	"io"

	"github.com/wrennhq/wrenn"
)

// maxWatchBatch bounds the events of one batch the guest sends.
const maxWatchBatch = 4 * watchBatchMax

// Watch is a watch on a guest directory.
type Watch struct {
	cl      *call
	pending []fsEvent
	err     error
}

// WatchDir watches the guest directory path, and if recursive everything
// below it. It returns once the watch is in place. A missing directory is
// a wrenn.ENotFound error, a file wrenn.EInvalid.
func (c *Client) WatchDir(ctx context.Context, path string, recursive bool) (*Watch, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	cl, err := c.open(ctx, opWatch, request{Op: opWatch, Path: path, Recursive: recursive})
	if err != nil {
		return nil, err
	}
	if err := cl.reply(); err != nil {
		cl.close()
		return nil, err
	}
	return &Watch{cl: cl}, nil
}

// Recv returns the next change. Once the watch ends it returns the reason:
// the guest's error (ETooLarge when it could not keep up), or the
// stream's.
func (w *Watch) Recv() (wrenn.FileEvent, error) {
	for len(w.pending) == 0 {
		if w.err != nil {
			return wrenn.FileEvent{}, w.err
		}
		m, err := w.cl.message()
		switch {
		case err != nil:
			w.err = err
		case m.Type == msgEvents:
			if len(m.Events) > maxWatchBatch {
				w.err = w.cl.fail(fmt.Errorf("%w: a batch of %d events", errBadFrame, len(m.Events)))
				continue
			}
			w.pending = m.Events
		default:
			if w.err = w.cl.check(m); w.err == nil {
				w.err = io.EOF // an ok: the guest ended the watch
			}
		}
		if w.err != nil {
			w.cl.close()
		}
	}
	e := w.pending[0]
	w.pending = w.pending[1:]
	return wrenn.FileEvent{Op: e.Op, Path: e.Path}, nil
}

// Close ends the watch.
func (w *Watch) Close() error {
	w.cl.close()
	return nil
}
