package envd

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/yamux"
)

// Attribute keys of this package's log lines.
const (
	attrError    = "error"
	attrReply    = "reply"
	attrSignal   = "signal"
	attrPath     = "path"
	attrPID      = "pid"
	attrCmd      = "cmd"
	attrCode     = "exit_code"
	attrBytes    = "bytes"
	attrSession  = "session"
	attrClock    = "clock"
	attrHostname = "hostname"
	attrTag      = "tag"
)

// Session tuning. The window bounds what one stream buffers on the receiving
// side; keepalive notices a peer that went away without closing the channel
// (a paused or crashed VM, a host agent killed mid-session).
const (
	streamWindow      = 1 << 20
	keepAliveInterval = 15 * time.Second
	writeTimeout      = 15 * time.Second
	streamOpenTimeout = 30 * time.Second
	streamLinger      = 30 * time.Second // a half-closed stream is reset after this
)

func yamuxConfig(log *slog.Logger) *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = true
	c.KeepAliveInterval = keepAliveInterval
	c.ConnectionWriteTimeout = writeTimeout
	c.MaxStreamWindowSize = streamWindow
	c.StreamOpenTimeout = streamOpenTimeout
	c.StreamCloseTimeout = streamLinger
	c.LogOutput = nil
	c.Logger = yamuxLogger{log}
	return c
}

// yamuxLogger sends yamux's log lines to slog. Its "[ERR]" lines are
// mostly a peer going away, which the caller also sees; its "[WARN]" lines
// are frames for streams already closed, expected after an abort.
type yamuxLogger struct{ log *slog.Logger }

func (l yamuxLogger) Print(v ...any)                 { l.out(fmt.Sprint(v...)) }
func (l yamuxLogger) Printf(format string, v ...any) { l.out(fmt.Sprintf(format, v...)) }
func (l yamuxLogger) Println(v ...any)               { l.out(fmt.Sprintln(v...)) }

func (l yamuxLogger) out(s string) {
	s = strings.TrimSpace(s)
	level := slog.LevelDebug
	if rest, ok := strings.CutPrefix(s, "[ERR] "); ok {
		s, level = rest, slog.LevelInfo
	} else if rest, ok := strings.CutPrefix(s, "[WARN] "); ok {
		s = rest
	}
	l.log.Log(context.Background(), level, s) // yamux gives no context
}

// bufferedConn is a connection whose reads go through the buffered reader
// the handshake used, so bytes it read ahead reach yamux, and whose writes
// put each small yamux data frame in one write (joinedWriter).
type bufferedConn struct {
	*bufio.Reader
	*joinedWriter
}

func newBufferedConn(r *bufio.Reader, w io.WriteCloser) bufferedConn {
	return bufferedConn{r, &joinedWriter{w: w}}
}

// Yamux's frame header, as its send loop writes it: version, type, flags,
// stream, length (for a data frame, the length of the body that follows).
const (
	yamuxHeaderSize = 12
	yamuxTypeData   = 0
)

// joinMax is the largest data frame body joinedWriter joins to its header.
// A larger body is written on its own: its copy would cost more than the
// write it saves.
const joinMax = 8 << 10

// joinedWriter writes a yamux data frame's header and a small body in one
// write. Yamux's send loop writes them apart, and on a virtio-serial port
// every write is a buffer, a kick to the VMM and an interrupt of its own,
// both ends under TCG: an exec's answer is several frames. Only the send
// loop writes, so Write is called by one goroutine at a time.
type joinedWriter struct {
	w    io.WriteCloser
	buf  []byte
	held bool // buf holds a header whose body comes with the next Write
}

func (j *joinedWriter) Write(b []byte) (int, error) {
	if j.held {
		j.held = false
		j.buf = append(j.buf, b...)
		if _, err := j.w.Write(j.buf); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	if len(b) == yamuxHeaderSize && b[1] == yamuxTypeData {
		if n := binary.BigEndian.Uint32(b[8:]); n > 0 && n <= joinMax {
			j.buf = append(j.buf[:0], b...)
			j.held = true
			return len(b), nil
		}
	}
	return j.w.Write(b)
}

func (j *joinedWriter) Close() error { return j.w.Close() }
