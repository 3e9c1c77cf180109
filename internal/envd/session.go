package envd

import (
	"bufio"
	"context"
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
// the handshake used, so bytes it read ahead reach yamux.
type bufferedConn struct {
	*bufio.Reader
	w io.WriteCloser
}

func (c bufferedConn) Write(b []byte) (int, error) { return c.w.Write(b) }
func (c bufferedConn) Close() error                { return c.w.Close() }
