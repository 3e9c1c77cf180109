package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Bounds of the WebSocket streams.
const (
	maxMessage   = 8 << 20 // the server's messages carry at most 1 MiB of output, base64 grows it
	writeTimeout = 30 * time.Second
)

// wsConn is a WebSocket of one of the API's streams, closed when the
// context it was opened with ends, so that a stream nobody closes leaks
// nothing past its context.
type wsConn struct {
	conn *websocket.Conn
	stop func() bool

	mu     sync.Mutex
	err    error // the context's error once it ended
	closed bool
}

// dial opens a WebSocket at path; a handshake the server refuses is an
// *Error with its status.
func (c *Client) dial(ctx context.Context, path string, q url.Values) (*wsConn, error) {
	h := http.Header{}
	c.header(h)
	conn, resp, err := websocket.Dial(ctx, c.url(path, q), &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, errorFrom(resp)
		}
		return nil, err
	}
	conn.SetReadLimit(maxMessage)
	w := &wsConn{conn: conn}
	w.stop = context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.err = ctx.Err()
		w.mu.Unlock()
		conn.CloseNow()
	})
	return w, nil
}

// read returns the next message; io.EOF once the server has closed
// normally, the context's error once it ended, errClosed after close.
func (w *wsConn) read() ([]byte, error) {
	_, b, err := w.conn.Read(context.Background())
	if err == nil {
		return b, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.closed:
		return nil, errClosed
	case w.err != nil:
		return nil, w.err
	case websocket.CloseStatus(err) == websocket.StatusNormalClosure:
		return nil, io.EOF
	}
	return nil, err
}

// write sends v as one JSON text message.
func (w *wsConn) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if err := w.conn.Write(ctx, websocket.MessageText, b); err != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
		switch {
		case w.closed:
			return errClosed
		case w.err != nil:
			return w.err
		}
		return err
	}
	return nil
}

// drainTimeout bounds how long drain waits for the server to close.
const drainTimeout = 5 * time.Second

// drain reads what is left until the server closes (after a stream's
// last event), then lets the connection go. Only the first call waits.
func (w *wsConn) drain() {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	for {
		if _, _, err := w.conn.Read(ctx); err != nil {
			break
		}
	}
	w.close()
}

// close drops the connection at once.
func (w *wsConn) close() error {
	w.stop()
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	_ = w.conn.CloseNow() // an error only says it was closed already
	return nil
}
