package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/url"
	"strconv"
)

// Kinds of FileEvent.
const (
	FileCreated = "create"
	FileWritten = "write"
	FileRemoved = "remove"
	FileRenamed = "rename" // Path is the old name; the new one has its own create
	FileChmod   = "chmod"
)

// FileEvent is one change under a watched directory.
type FileEvent struct {
	Op   string // a File... kind
	Path string // absolute
}

// Watch reports the changes under a directory of a sandbox. Keep calling
// Recv: the server checks an idle watch's connection with pings, which
// are answered while Recv reads.
type Watch struct {
	ws *wsConn
}

// WatchDir watches the directory path, and if recursive everything below
// it. Every change after WatchDir returns is reported. An open watch does
// not count as activity.
func (c *Client) WatchDir(ctx context.Context, id, path string, recursive bool) (*Watch, error) {
	q := url.Values{"path": {path}}
	if recursive {
		q.Set("recursive", strconv.FormatBool(recursive))
	}
	ws, err := c.dial(ctx, sandboxPath(id, "/files/watch"), q)
	if err != nil {
		return nil, err
	}
	return &Watch{ws: ws}, nil
}

// Recv returns the next change. A watch that fails (the sandbox stopped
// or paused, changes came too fast) is an *Error of CodeStream; one whose
// context ended, the context's error.
func (w *Watch) Recv() (FileEvent, error) {
	for {
		b, err := w.ws.read()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return FileEvent{}, err
		}
		var m struct {
			Type string `json:"type"`
			Op   string `json:"op"`
			Path string `json:"path"`
			Data string `json:"data"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return FileEvent{}, fmt.Errorf("watch message: %w", err)
		}
		switch m.Type {
		case "event":
			return FileEvent{Op: m.Op, Path: m.Path}, nil
		case "error":
			return FileEvent{}, &Error{Code: CodeStream, Message: m.Data}
		}
	}
}

// Events iterates over the changes until the watch fails or is closed;
// the error is yielded last.
func (w *Watch) Events() iter.Seq2[FileEvent, error] {
	return func(yield func(FileEvent, error) bool) {
		for {
			ev, err := w.Recv()
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

// Close ends the watch.
func (w *Watch) Close() error { return w.ws.close() }
