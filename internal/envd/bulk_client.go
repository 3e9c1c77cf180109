package envd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// ErrBulkUnavailable means the bulk channel cannot take a transfer now
// (another one holds it, or the guest does not answer on it) and nothing
// of the caller's data was consumed: move the file over the session.
var ErrBulkUnavailable = errors.New("envd: bulk channel unavailable")

const (
	// helloEvery is how often the host repeats its hello.
	helloEvery = 100 * time.Millisecond
	// bulkHandshakeWait bounds how long a transfer waits for the guest to
	// answer its hello: a guest still sending a file whose host went away
	// answers once it has.
	bulkHandshakeWait = 3 * time.Second
	// bulkAnswerWait bounds the wait for the guest's ready, and for its
	// done once the host has sent the body.
	bulkAnswerWait = 60 * time.Second
	// bulkRedialAfter keeps a host from dialling again at once after it
	// dropped its connection part way: the guest then sees the host go
	// and starts afresh, rather than reading the next transfer's bytes as
	// the rest of the last.
	bulkRedialAfter = time.Second
)

// Bulk is the host's end of a guest's bulk channel (bulk.go): one
// transfer at a time over one connection, dialled when first needed and
// kept. It is safe for concurrent use; a transfer that finds it busy gets
// ErrBulkUnavailable.
type Bulk struct {
	dial func(ctx context.Context) (net.Conn, error)
	log  *slog.Logger

	mu      sync.Mutex // held for a whole transfer
	conn    net.Conn
	br      *bufio.Reader
	brokeAt time.Time
	closed  bool
}

// NewBulk returns the bulk channel that dial connects to.
func NewBulk(dial func(ctx context.Context) (net.Conn, error), log *slog.Logger) *Bulk {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bulk{dial: dial, log: log}
}

// DialUnix returns a dial function for the Unix socket at path.
func DialUnix(path string) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
}

// Connect dials the channel ahead of the first transfer, so that the
// guest, which polls its port while no host is there, can stop polling.
func (b *Bulk) Connect(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil || b.closed {
		return nil
	}
	conn, err := b.dial(ctx)
	if err != nil {
		return fmt.Errorf("envd bulk: dial: %w", err)
	}
	b.conn, b.br = conn, bufio.NewReaderSize(conn, bulkBufSize)
	return nil
}

// Close drops the connection; transfers after it are unavailable.
func (b *Bulk) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.drop()
	return nil
}

// drop closes the connection after a failure; b.mu is held. It dials
// again a little later, so that the guest, which polls its port while no
// host is there, stops polling even if no transfer comes.
func (b *Bulk) drop() {
	if b.conn != nil {
		b.conn.Close()
		b.conn, b.br = nil, nil
		b.brokeAt = time.Now()
		time.AfterFunc(bulkRedialAfter, func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := b.Connect(ctx); err != nil {
				b.log.Debug("bulk channel", slog.Any("error", err))
			}
		})
	}
}

// begin takes the channel and asks req of the guest. It returns the
// nonce and the guest's ready with b.mu held, or an error without it;
// ErrBulkUnavailable if the guest did not answer at all.
func (b *Bulk) begin(ctx context.Context, req bulkRequest) (string, bulkReply, error) {
	if !b.mu.TryLock() {
		return "", bulkReply{}, ErrBulkUnavailable
	}
	nonce, reply, answered, err := b.ask(ctx, req)
	if err != nil {
		b.drop()
		b.mu.Unlock()
		if ctx.Err() != nil {
			return "", bulkReply{}, fmt.Errorf("envd bulk %s: %w", req.Op, ctx.Err())
		}
		if !answered {
			b.log.Debug("bulk channel unavailable", slog.Any("error", err))
			return "", bulkReply{}, ErrBulkUnavailable
		}
		return "", bulkReply{}, fmt.Errorf("envd bulk %s: %w", req.Op, err)
	}
	if err := reply.err(); err != nil {
		b.mu.Unlock()
		return "", bulkReply{}, err
	}
	return nonce, reply, nil
}

// ask makes sure of a connection and sends hello and go in one write,
// repeated until the guest answers: one round trip where a channel in
// step takes the request at once, and a guest that reopened its port in
// between (dropping what had come) gets it again. The guest serves each
// nonce once. answered says the guest took the request.
func (b *Bulk) ask(ctx context.Context, req bulkRequest) (nonce string, reply bulkReply, answered bool, err error) {
	if b.closed {
		return "", reply, false, ErrClosed
	}
	if b.conn == nil {
		if time.Since(b.brokeAt) < bulkRedialAfter {
			return "", reply, false, errors.New("dropped its connection a moment ago")
		}
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := b.dial(dctx)
		cancel()
		if err != nil {
			return "", reply, false, err
		}
		b.conn, b.br = conn, bufio.NewReaderSize(conn, bulkBufSize)
	}
	var nb [8]byte
	rand.Read(nb[:])
	nonce = hex.EncodeToString(nb[:])
	var hello bytes.Buffer
	writeBulkLine(&hello, bulkHello, nonce, nil)
	if err := writeBulkLine(&hello, bulkGo, nonce, req); err != nil {
		return "", reply, false, err
	}
	conn := b.conn // the closure must not see drop's nil
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	defer b.conn.SetDeadline(time.Time{})
	giveUp := time.Now().Add(bulkHandshakeWait)
	for {
		b.conn.SetWriteDeadline(giveUp)
		if _, err := b.conn.Write(hello.Bytes()); err != nil {
			return "", reply, false, ctxOr(ctx, err)
		}
		// Once the guest has said anything of this nonce it has the
		// request: it may take a while over it (a path to make).
		b.conn.SetReadDeadline(time.Now().Add(helloEvery))
		for {
			word, got, rest, err := readBulkLine(b.br)
			if errors.Is(err, os.ErrDeadlineExceeded) && !answered && ctx.Err() == nil {
				break // ask again
			}
			if err != nil {
				return "", reply, answered, ctxOr(ctx, noEOF(err))
			}
			if got != nonce {
				continue
			}
			if word == bulkOK {
				answered = true
				b.conn.SetReadDeadline(time.Now().Add(bulkAnswerWait))
				continue
			}
			if word != bulkReady && word != bulkDone {
				continue
			}
			if err := json.Unmarshal(rest, &reply); err != nil {
				return "", reply, true, fmt.Errorf("%w: %v", errBadFrame, err)
			}
			if word == bulkDone && reply.Type == msgOK {
				return "", reply, true, fmt.Errorf("%w: done before the transfer", errBadFrame)
			}
			return nonce, reply, true, nil
		}
		if time.Now().After(giveUp) {
			return "", reply, false, errors.New("the guest did not answer on its bulk channel")
		}
	}
}

// answer reads the guest's next line for nonce: want, or done.
func (b *Bulk) answer(ctx context.Context, nonce, want string) (bulkReply, error) {
	for {
		word, got, rest, err := readBulkLine(b.br)
		if err != nil {
			return bulkReply{}, ctxOr(ctx, noEOF(err))
		}
		if got != nonce || (word != want && word != bulkDone) {
			continue // an ok to a repeated hello
		}
		var reply bulkReply
		if err := json.Unmarshal(rest, &reply); err != nil {
			return bulkReply{}, fmt.Errorf("%w: %v", errBadFrame, err)
		}
		if word == bulkDone && reply.Type == msgOK && want != bulkDone {
			return bulkReply{}, fmt.Errorf("%w: done before the transfer", errBadFrame)
		}
		return reply, nil
	}
}

// ctxOr prefers the context's error to the deadline it caused.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// WriteFile streams r into the guest file path, as Client.WriteFile does,
// over the bulk channel. It returns ErrBulkUnavailable, having read
// nothing of r, when the channel cannot take it now.
func (b *Bulk) WriteFile(ctx context.Context, path string, r io.Reader) error {
	if err := checkPath(path); err != nil {
		return err
	}
	nonce, ready, err := b.begin(ctx, bulkRequest{Op: bulkWrite, Path: path, Sum: sumXXH64})
	if err != nil {
		return err
	}
	defer b.mu.Unlock()
	conn := b.conn // the closure must not see drop's nil
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	cw := newChunkWriter(b.conn, bulkChunk, hostSum(ready.Sum))
	failed := writeBulkLine(b.conn, bulkBody, nonce, nil)
	for failed == nil {
		n, rerr := fill(r, cw.payload())
		if n > 0 {
			if err := cw.send(n); err != nil {
				failed = ctxOr(ctx, err)
				break
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			failed = fmt.Errorf("envd write: read body: %w", rerr)
		}
	}
	if failed != nil {
		// Give the upload up: finish the chunk, mark the abort and wait
		// for the guest to have removed its file.
		stop()
		b.conn.SetDeadline(time.Now().Add(abortWait))
		err := cw.abort()
		if err == nil {
			_, err = b.answer(context.Background(), nonce, bulkDone)
		}
		if err != nil {
			b.log.Warn("bulk upload not given up cleanly", slog.Any("error", err))
			b.drop()
		} else {
			b.conn.SetDeadline(time.Time{})
		}
		return failed
	}
	err = cw.end()
	var reply bulkReply
	if err == nil {
		b.conn.SetDeadline(time.Now().Add(bulkAnswerWait))
		reply, err = b.answer(ctx, nonce, bulkDone)
	}
	if !stop() || err != nil {
		b.drop()
		if err == nil {
			err = ctx.Err()
		}
		return fmt.Errorf("envd bulk write: %w", ctxOr(ctx, err))
	}
	b.conn.SetDeadline(time.Time{})
	if err := reply.err(); err != nil {
		return err
	}
	if reply.Size != cw.total {
		b.drop()
		return fmt.Errorf("envd bulk write: %w: sent %d bytes, the guest says %d", errBadFrame, cw.total, reply.Size)
	}
	return nil
}

// ReadFile streams the guest file path, as Client.ReadFile does, over the
// bulk channel; ErrBulkUnavailable when the channel cannot take it now.
// The channel is the reader's until Close.
func (b *Bulk) ReadFile(ctx context.Context, path string) (io.ReadCloser, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	nonce, reply, err := b.begin(ctx, bulkRequest{Op: bulkRead, Path: path, Sum: sumXXH64})
	if err != nil {
		return nil, err
	}
	br := &bulkReader{b: b, ctx: ctx, nonce: nonce, size: reply.Size}
	br.cr.r, br.cr.sum = b.br, hostSum(reply.Sum)
	conn := b.conn // the closure must not see drop's nil
	br.stop = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return br, nil
}

// bulkReader is the body of Bulk.ReadFile.
type bulkReader struct {
	b     *Bulk
	ctx   context.Context
	nonce string
	size  int64
	cr    chunkReader
	stop  func() bool
	done  bool // the channel is given back
	err   error
}

func (r *bulkReader) Read(p []byte) (int, error) {
	if r.done {
		if r.err == nil {
			r.err = fmt.Errorf("envd bulk read: %w", errCallClosed)
		}
		return 0, r.err
	}
	n, err := r.cr.Read(p)
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, io.EOF):
		r.err = io.EOF
		r.release(true)
	case errors.Is(err, errBulkAborted):
		// The guest failed part way; its done says why.
		r.b.conn.SetDeadline(time.Now().Add(abortWait))
		reply, aerr := r.b.answer(r.ctx, r.nonce, bulkDone)
		r.b.conn.SetDeadline(time.Time{})
		if aerr == nil {
			if r.err = reply.err(); r.err == nil {
				r.err = fmt.Errorf("envd bulk read: %w: the guest gave the transfer up", errBadFrame)
			}
		} else {
			r.err = fmt.Errorf("envd bulk read: %w", aerr)
		}
		r.release(aerr == nil)
	default:
		r.err = fmt.Errorf("envd bulk read: %w", ctxOr(r.ctx, err))
		r.release(false)
	}
	return n, r.err
}

// release gives the channel back, dropping the connection unless the
// transfer ended in step (clean).
func (r *bulkReader) release(clean bool) {
	if r.done {
		return
	}
	r.done = true
	if !r.stop() {
		clean = false // the context's deadline may have hit the connection
	}
	if clean {
		r.b.conn.SetDeadline(time.Time{})
	} else {
		r.b.drop()
	}
	r.b.mu.Unlock()
}

// Close ends the transfer, whether or not it is complete.
func (r *bulkReader) Close() error {
	r.release(false)
	return nil
}
