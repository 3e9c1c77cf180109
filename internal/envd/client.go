package envd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/yamux"

	"github.com/wrennhq/wrenn"
)

// ErrClosed means the client was closed or its session with the guest has
// ended. A session does not come back: make a new Client over a new
// connection.
var ErrClosed = errors.New("envd: session closed")

// Limits the host puts on what it asks of the guest.
const (
	maxEntropy  = 64 << 10
	maxHostname = 64
)

// Client talks to one guest's envd over conn. It is safe for concurrent use.
//
// NewClient does not wait for the guest: the handshake runs in the
// background, and every call waits for it (within its context) first, so
// Ping with a deadline is how to wait for a guest that is still booting.
type Client struct {
	conn io.ReadWriteCloser
	log  *slog.Logger

	ready chan struct{}  // closed when the handshake has ended, well or not
	sess  *yamux.Session // set before ready is closed; nil when err is set
	err   error          // why there is no session; set before ready is closed

	closing   chan struct{}
	closeOnce sync.Once
	done      chan struct{} // closed when run has returned
}

// NewClient starts a session with the guest over conn. The client owns
// conn from now on and closes it in Close.
func NewClient(conn io.ReadWriteCloser, log *slog.Logger) (*Client, error) {
	if conn == nil {
		return nil, errors.New("envd: new client: nil connection")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		conn:    conn,
		log:     log,
		ready:   make(chan struct{}),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	go c.run()
	return c, nil
}

// run shakes hands, then holds the session until it ends or Close.
func (c *Client) run() {
	defer close(c.done)
	br := bufio.NewReaderSize(c.conn, sessionBufSize)
	if err := dialHandshake(br, c.conn, c.closing); err != nil {
		c.conn.Close()
		if !errors.Is(err, ErrClosed) && !errors.Is(err, ErrVersion) {
			err = fmt.Errorf("%w: %w", ErrClosed, err)
		}
		c.err = fmt.Errorf("handshake: %w", err)
		close(c.ready)
		return
	}
	sess, err := yamux.Client(newBufferedConn(br, c.conn), yamuxConfig(c.log))
	if err != nil {
		c.conn.Close()
		c.err = fmt.Errorf("start session: %w", err)
		close(c.ready)
		return
	}
	c.sess = sess
	close(c.ready)
	select {
	case <-sess.CloseChan():
		c.log.Warn("envd session ended")
	case <-c.closing:
		sess.Close()
	}
}

// Close ends the session and closes the connection. Calls in flight fail.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closing)
		c.conn.Close()
	})
	<-c.done
	return nil
}

// session waits for the handshake.
func (c *Client) session(ctx context.Context) (*yamux.Session, error) {
	select {
	case <-c.ready:
	case <-c.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if c.err != nil {
		return nil, c.err
	}
	return c.sess, nil
}

// Ping waits for the guest's envd to answer, round trip through its
// request handling.
func (c *Client) Ping(ctx context.Context) error {
	cl, err := c.open(ctx, opPing, request{Op: opPing})
	if err != nil {
		return err
	}
	defer cl.close()
	return cl.reply()
}

// Detach asks the guest to end this session and wait for the next host,
// then closes the client. Call it before snapshotting a VM, so that the
// guest restored from the snapshot answers the next hello at once. A guest
// that does not know detach is just disconnected.
func (c *Client) Detach(ctx context.Context) error {
	defer c.Close()
	cl, err := c.open(ctx, opDetach, request{Op: opDetach})
	if err != nil {
		return err
	}
	defer cl.close()
	return cl.reply()
}

// InitRequest is what the guest is given after every boot and restore.
type InitRequest struct {
	Now      time.Time // the guest clock is set to this
	Entropy  []byte    // mixed into the guest kernel's RNG and credited; at most 64 KiB
	Hostname string    // empty leaves the hostname as it is
}

// Init sets the guest's clock, reseeds its RNG and sets its hostname. Run it
// after every boot and every snapshot restore: clones of one snapshot share
// clock and RNG state.
func (c *Client) Init(ctx context.Context, req InitRequest) error {
	if len(req.Entropy) > maxEntropy {
		return wrenn.Errorf(wrenn.EInvalid, "entropy is over %d bytes", maxEntropy)
	}
	if len(req.Hostname) > maxHostname || !utf8.ValidString(req.Hostname) {
		return wrenn.Errorf(wrenn.EInvalid, "hostname is not a valid host name")
	}
	p := &initParams{Entropy: req.Entropy, Hostname: req.Hostname}
	if !req.Now.IsZero() {
		p.UnixNano = req.Now.UnixNano()
	}
	cl, err := c.open(ctx, opInit, request{Op: opInit, Init: p})
	if err != nil {
		return err
	}
	defer cl.close()
	return cl.reply()
}

// call is one operation on its own stream.
type call struct {
	op        string
	ctx       context.Context
	st        *yamux.Stream
	r         *bufio.Reader
	stopAbort func() bool
	closeOnce sync.Once
	closed    atomic.Bool
}

// errCallClosed is what a call's reads and writes fail with after close.
var errCallClosed = errors.New("closed")

// open starts an operation: a new stream carrying req. Cancelling ctx
// aborts the operation for as long as it runs.
func (c *Client) open(ctx context.Context, op string, req request) (*call, error) {
	payload, err := encodeJSON(req)
	if err != nil {
		return nil, fmt.Errorf("envd %s: %w", op, err)
	}
	if len(payload) > maxFramePayload {
		// The guest would drop a frame this large, and the stream with it.
		return nil, wrenn.Errorf(wrenn.EInvalid, "the %s request is %d bytes encoded, over the guest's limit of %d", op, len(payload), maxFramePayload)
	}
	sess, err := c.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("envd %s: %w", op, err)
	}
	st, err := sess.OpenStream()
	if err != nil {
		if sess.IsClosed() {
			err = ErrClosed
		}
		return nil, fmt.Errorf("envd %s: open stream: %w", op, err)
	}
	cl := &call{op: op, ctx: ctx, st: st, r: bufio.NewReaderSize(st, streamBufSize)}
	cl.stopAbort = context.AfterFunc(ctx, cl.abort)
	if err := writeFrame(st, frameJSON, payload); err != nil {
		cl.close()
		return nil, cl.fail(err)
	}
	return cl, nil
}

// abort unblocks every read and write of the call and, by closing the
// host's side of the stream, tells the guest the host is gone.
func (cl *call) abort() {
	cl.st.SetDeadline(time.Unix(1, 0))
	cl.st.Close()
}

// close ends the call: after its last frame, or to give it up.
func (cl *call) close() {
	cl.closeOnce.Do(func() {
		cl.closed.Store(true)
		cl.stopAbort()
		cl.abort()
	})
}

// fail explains why a read or write of the call failed: the context, the
// session, or the stream itself.
func (cl *call) fail(err error) error {
	if ctxErr := cl.ctx.Err(); ctxErr != nil {
		return fmt.Errorf("envd %s: %w", cl.op, ctxErr)
	}
	if cl.st.Session().IsClosed() {
		return fmt.Errorf("envd %s: %w", cl.op, ErrClosed)
	}
	if cl.closed.Load() {
		return fmt.Errorf("envd %s: %w", cl.op, errCallClosed)
	}
	return fmt.Errorf("envd %s: %w", cl.op, noEOF(err))
}

// message reads the next message of the call.
func (cl *call) message() (message, error) {
	var m message
	if err := readMessage(cl.r, &m); err != nil {
		return m, cl.fail(err)
	}
	return m, nil
}

// reply reads a reply that is either ok or an error.
func (cl *call) reply() error {
	m, err := cl.message()
	if err != nil {
		return err
	}
	return cl.check(m)
}

// check turns a reply other than ok into an error. The guest's coded
// errors come back as they are (*wrenn.Error), others wrapped.
func (cl *call) check(m message) error {
	switch m.Type {
	case msgOK:
		return nil
	case msgError:
		err := m.guestError()
		if _, ok := errors.AsType[*wrenn.Error](err); ok {
			return err
		}
		return fmt.Errorf("envd %s: %w", cl.op, err)
	}
	return fmt.Errorf("envd %s: %w: unexpected %q message", cl.op, errBadFrame, m.Type)
}
