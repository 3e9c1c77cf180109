package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
)

// ptyPingInterval is how often the server sends "ping" on an idle or busy
// terminal by default, as 0.1.5 does, so that proxies keep the connection
// open.
const ptyPingInterval = 30 * time.Second

// ptyClientMessage is PtyClientMessage of the contract.
type ptyClientMessage struct {
	Type string            `json:"type"`
	Cmd  string            `json:"cmd"`
	Args []string          `json:"args"`
	Cols int               `json:"cols"`
	Rows int               `json:"rows"`
	Envs map[string]string `json:"envs"`
	Cwd  string            `json:"cwd"`
	User string            `json:"user"`
	Tag  string            `json:"tag"`
	Data string            `json:"data"`
}

// ptyServerMessage is PtyServerMessage of the contract.
type ptyServerMessage struct {
	Type     string  `json:"type"`
	Tag      string  `json:"tag,omitempty"`
	PID      int     `json:"pid,omitempty"`
	Data     *string `json:"data,omitempty"`
	ExitCode *int    `json:"exit_code,omitempty"`
	Fatal    *bool   `json:"fatal,omitempty"`
}

// ptySession serves a terminal over a WebSocket as 0.1.5 describes: the
// client's first message starts a terminal or connects to one by tag;
// then input, resize and kill go in, and started, output, exit, errors
// and pings come out. The client going away detaches: the terminal keeps
// running in the sandbox.
func (s *Server) ptySession(w http.ResponseWriter, r *http.Request) {
	teamID, id := caller(r).TeamID, r.PathValue("id")
	// Refuse before the upgrade, so clients get a status and the envelope.
	if err := s.control.CheckRunning(r.Context(), teamID, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	conn, err := acceptWS(w, r)
	if err != nil {
		return // Accept has answered the client
	}
	defer conn.CloseNow()
	conn.SetReadLimit(maxStreamMessage)
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	log := s.log.With(slog.String(attrSandboxID, id))

	p, err := readPtyOpen(ctx, conn)
	if err != nil {
		s.ptyFatal(ctx, log, conn, err, websocket.StatusPolicyViolation)
		return
	}
	t, err := s.control.OpenTerminal(ctx, teamID, id, p)
	if err != nil {
		s.ptyFatal(ctx, log, conn, err, websocket.StatusNormalClosure)
		return
	}
	defer t.Close()

	var wg sync.WaitGroup
	defer wg.Wait()
	defer conn.CloseNow() // ends the reader, before wg.Wait
	gone := make(chan struct{})
	wg.Go(func() {
		defer close(gone)
		defer t.Close() // detach: the forwarder's Recv ends
		readPtyInput(ctx, log, conn, t)
	})
	wg.Go(func() { pingPty(ctx, conn, gone, s.ptyPing) })
	defer cancel() // ends the pings, before wg.Wait

	err = forwardPty(ctx, conn, t)
	select {
	case <-gone:
		return // the client went away; the terminal stays
	default:
	}
	if err == nil {
		conn.Close(websocket.StatusNormalClosure, "process exited")
		return
	}
	s.ptyFatal(ctx, log, conn, err, websocket.StatusNormalClosure)
}

// readPtyOpen reads the first message: start or connect.
func readPtyOpen(ctx context.Context, conn *websocket.Conn) (control.TerminalParams, error) {
	rctx, cancel := context.WithTimeout(ctx, streamStartTimeout)
	defer cancel()
	_, b, err := conn.Read(rctx)
	if err != nil {
		return control.TerminalParams{}, wrenn.Errorf(wrenn.EInvalid, "expected a start or connect message")
	}
	var m ptyClientMessage
	err = json.Unmarshal(b, &m)
	if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return control.TerminalParams{}, jsonError(err) // names the field
	}
	switch {
	case err == nil && m.Type == "start":
		return control.TerminalParams{Cmd: m.Cmd, Args: m.Args, Env: m.Envs, Dir: m.Cwd, User: m.User, Cols: m.Cols, Rows: m.Rows}, nil
	case err == nil && m.Type == "connect" && m.Tag != "":
		return control.TerminalParams{Tag: m.Tag}, nil
	case err == nil && m.Type == "connect":
		return control.TerminalParams{}, wrenn.Errorf(wrenn.EInvalid, "connect needs the tag of a session")
	}
	return control.TerminalParams{}, wrenn.Errorf(wrenn.EInvalid,
		`the first message must be {"type":"start",...} or {"type":"connect","tag":...}`)
}

// readPtyInput passes the client's messages to the terminal until the
// client goes away. A message it cannot act on is answered with an error
// that is not fatal.
func readPtyInput(ctx context.Context, log *slog.Logger, conn *websocket.Conn, t wrenn.Terminal) {
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			return
		}
		var m ptyClientMessage
		if err := json.Unmarshal(b, &m); err != nil {
			ptyError(ctx, conn, jsonError(err).Error())
			continue
		}
		switch m.Type {
		case "input":
			data, derr := base64.StdEncoding.DecodeString(m.Data)
			if derr != nil {
				ptyError(ctx, conn, "input data must be base64")
				continue
			}
			err = t.Input(data)
		case "resize":
			if m.Cols < 1 || m.Cols > wrenn.MaxTerminalCols || m.Rows < 1 || m.Rows > wrenn.MaxTerminalRows {
				ptyError(ctx, conn, wrenn.Errorf(wrenn.EInvalid, "cols must be between 1 and %d and rows between 1 and %d",
					wrenn.MaxTerminalCols, wrenn.MaxTerminalRows).Error())
				continue
			}
			err = t.Resize(m.Cols, m.Rows)
		case "kill":
			err = t.Kill()
		case "ping", "pong":
			// keep-alives of clients that answer ours
		default:
			ptyError(ctx, conn, `message type must be "input", "resize" or "kill"`)
		}
		if err != nil {
			// The terminal's stream has ended; the forwarder reports why.
			log.DebugContext(ctx, "pty: pass a message on", slog.String("type", m.Type), slog.Any(attrError, err))
		}
	}
}

// forwardPty sends the terminal's events to the client until its exit,
// and returns nil then, or the error that ended the stream.
func forwardPty(ctx context.Context, conn *websocket.Conn, t wrenn.Terminal) error {
	for {
		ev, err := t.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		m := ptyServerMessage{Type: string(ev.Type)}
		switch ev.Type {
		case wrenn.TerminalStarted:
			m.Tag, m.PID = ev.Tag, ev.PID
		case wrenn.TerminalOutput:
			data := base64.StdEncoding.EncodeToString(ev.Data)
			m.Data = &data
		case wrenn.TerminalExited:
			m.ExitCode = &ev.ExitCode
		}
		if err := writePty(ctx, conn, m); err != nil {
			conn.CloseNow() // the client is gone or stuck: the reader notices
		}
	}
}

func pingPty(ctx context.Context, conn *websocket.Conn, gone <-chan struct{}, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-gone:
			return
		case <-tick.C:
			if writePty(ctx, conn, ptyServerMessage{Type: "ping"}) != nil {
				return
			}
		}
	}
}

func writePty(ctx context.Context, conn *websocket.Conn, m ptyServerMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, streamWriteTimeout)
	defer cancel()
	return conn.Write(wctx, websocket.MessageText, b)
}

// ptyError tells the client of a message the server could not act on.
func ptyError(ctx context.Context, conn *websocket.Conn, msg string) {
	fatal := false
	_ = writePty(ctx, conn, ptyServerMessage{Type: "error", Data: &msg, Fatal: &fatal})
}

// ptyFatal tells the client why the session ends, and closes the connection.
func (s *Server) ptyFatal(ctx context.Context, log *slog.Logger, conn *websocket.Conn, err error, code websocket.StatusCode) {
	msg := wrenn.ErrorMessage(err)
	if wrenn.ErrorCode(err) == wrenn.EInternal {
		log.ErrorContext(ctx, "pty session failed", slog.Any(attrError, err))
	}
	fatal := true
	_ = writePty(ctx, conn, ptyServerMessage{Type: "error", Data: &msg, Fatal: &fatal})
	conn.Close(code, "")
}
