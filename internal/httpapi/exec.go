package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
)

const defaultExecTimeoutSec = 30

// execRequest is ExecRequest of the spec. env is an older spelling of
// envs, which wins where both name a variable.
type execRequest struct {
	Cmd        string            `json:"cmd"`
	Args       []string          `json:"args"`
	Env        map[string]string `json:"env"`
	Envs       map[string]string `json:"envs"`
	Cwd        string            `json:"cwd"`
	TimeoutSec *int              `json:"timeout_sec"`
	Background bool              `json:"background"`
	Tag        string            `json:"tag"` // background only
}

// params is the request for the control plane, which checks it.
func (e execRequest) params() control.ExecParams {
	env := e.Envs
	if len(e.Env) > 0 {
		env = make(map[string]string, len(e.Env)+len(e.Envs))
		maps.Copy(env, e.Env)
		maps.Copy(env, e.Envs)
	}
	return control.ExecParams{Cmd: e.Cmd, Args: e.Args, Env: env, Dir: e.Cwd,
		TimeoutSec: orDefault(e.TimeoutSec, defaultExecTimeoutSec)}
}

type execResponse struct {
	SandboxID  string `json:"sandbox_id"`
	Cmd        string `json:"cmd"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	ExitCode   int    `json:"exit_code"`
	DurationMS int64  `json:"duration_ms"`
	Encoding   string `json:"encoding"`
}

func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	var req execRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Background {
		s.startBackground(w, r, req)
		return
	}
	id := r.PathValue("id")
	res, err := s.control.Exec(r.Context(), caller(r).TeamID, id, req.params())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := execResponse{SandboxID: id, Cmd: req.Cmd, ExitCode: res.ExitCode,
		DurationMS: res.Duration.Milliseconds(), Encoding: "utf-8"}
	if utf8.Valid(res.Stdout) && utf8.Valid(res.Stderr) {
		out.Stdout, out.Stderr = string(res.Stdout), string(res.Stderr)
	} else {
		out.Encoding = "base64"
		out.Stdout = base64.StdEncoding.EncodeToString(res.Stdout)
		out.Stderr = base64.StdEncoding.EncodeToString(res.Stderr)
	}
	writeJSON(w, http.StatusOK, out)
}

// streamMessage is one WebSocket message either way.
type streamMessage struct {
	Type string `json:"type"`
	// Client → server "start".
	Cmd        string            `json:"cmd,omitempty"`
	Args       []string          `json:"args,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Envs       map[string]string `json:"envs,omitempty"`
	Cwd        string            `json:"cwd,omitempty"`
	TimeoutSec *int              `json:"timeout_sec,omitempty"`
	// Server → client.
	PID      *int    `json:"pid,omitempty"`
	Data     *string `json:"data,omitempty"`
	Encoding string  `json:"encoding,omitempty"` // "base64" when data is not UTF-8
	ExitCode *int    `json:"exit_code,omitempty"`
}

const (
	streamStartTimeout = 30 * time.Second
	streamWriteTimeout = 30 * time.Second
	maxStreamMessage   = 1 << 20
)

// execStream runs one command over a WebSocket as the spec describes:
// the client's first message starts it, "stop" ends it, and the server
// closes the connection after the exit event. A client that goes away
// ends the command as "stop" would.
func (s *Server) execStream(w http.ResponseWriter, r *http.Request) {
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
	ctx := context.WithoutCancel(r.Context())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	start, err := readStart(ctx, conn)
	if err != nil {
		s.sendStreamError(ctx, conn, err)
		return
	}
	st, err := s.control.StartExec(ctx, teamID, id, start)
	if err != nil {
		s.sendStreamError(ctx, conn, err)
		return
	}
	// Stop and Close must not overlap: the reader, the only caller of
	// Stop, has returned before the stream is closed.
	finished, readerDone := make(chan struct{}), make(chan struct{})
	var finish sync.Once
	defer func() {
		finish.Do(func() { close(finished) })
		conn.CloseNow()
		<-readerDone
		st.Close()
	}()
	gone := make(chan struct{})
	go func() {
		defer close(readerDone)
		s.readClient(ctx, conn, st, id, finished, gone)
		select {
		case <-gone:
			// A command that will not stop is given up, which kills it.
			giveUp := time.AfterFunc(streamDropGrace, cancel)
			<-finished
			giveUp.Stop()
		default:
		}
	}()
	err = s.forwardEvents(ctx, conn, st, gone)
	finish.Do(func() { close(finished) }) // before closing: the reader must not take it for the client leaving
	switch {
	case errors.Is(err, errClientGone):
	case err == nil:
		conn.Close(websocket.StatusNormalClosure, "process exited")
	case ctx.Err() == nil:
		s.sendStreamError(ctx, conn, err)
	}
}

// streamDropGrace bounds how long a command stopped because its client went
// away may take to end, well past the guest's SIGTERM-to-SIGKILL grace.
const streamDropGrace = 20 * time.Second

// readClient reads the client's messages: "stop" stops the command. A
// client that goes away (its connection reset or closed, or a close frame)
// stops the command just as "stop" would, and closes gone.
func (s *Server) readClient(ctx context.Context, conn *websocket.Conn, st wrenn.ExecStream, id string, finished <-chan struct{}, gone chan<- struct{}) {
	stop := func() {
		if err := st.Stop(); err != nil {
			s.log.WarnContext(ctx, "stop streamed command", slog.String(attrSandboxID, id), slog.Any(attrError, err))
		}
	}
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			select {
			case <-finished: // the command ended and the server closed
			default:
				close(gone)
				stop()
			}
			return
		}
		var m streamMessage
		if json.Unmarshal(b, &m) == nil && m.Type == "stop" {
			stop()
		}
	}
}

func readStart(ctx context.Context, conn *websocket.Conn) (control.ExecParams, error) {
	rctx, cancel := context.WithTimeout(ctx, streamStartTimeout)
	defer cancel()
	_, b, err := conn.Read(rctx)
	if err != nil {
		return control.ExecParams{}, wrenn.Errorf(wrenn.EInvalid, "expected a start message")
	}
	var m streamMessage
	err = json.Unmarshal(b, &m)
	if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return control.ExecParams{}, jsonError(err) // names the field, e.g. a timeout_sec past any integer
	}
	if err != nil || m.Type != "start" {
		return control.ExecParams{}, wrenn.Errorf(wrenn.EInvalid, `the first message must be {"type":"start","cmd":...}`)
	}
	return execRequest{Cmd: m.Cmd, Args: m.Args, Env: m.Env, Envs: m.Envs, Cwd: m.Cwd, TimeoutSec: m.TimeoutSec}.params(), nil
}

// errClientGone is forwardEvents' answer when the client went away.
var errClientGone = errors.New("client gone")

// forwardEvents sends the command's events to the client until its exit,
// and returns nil then, or the error that ended the stream. Once the
// client is gone (gone closed, or a write failed) it reads the rest of the
// events without sending them, so that the command is stopped, not killed:
// the stream is closed only after its last event. It then returns
// errClientGone.
func (s *Server) forwardEvents(ctx context.Context, conn *websocket.Conn, st wrenn.ExecStream, gone <-chan struct{}) error {
	var carry [2][]byte // incomplete UTF-8 tails of stdout and stderr
	sending := true
	for {
		ev, err := st.Recv()
		select {
		case <-gone:
			sending = false
		default:
		}
		switch {
		case !sending && err != nil:
			return errClientGone
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		case !sending:
			continue
		}
		m := streamMessage{Type: string(ev.Type)}
		switch ev.Type {
		case wrenn.ExecStarted:
			m.PID = &ev.PID
		case wrenn.ExecStdout, wrenn.ExecStderr:
			i := 0
			if ev.Type == wrenn.ExecStderr {
				i = 1
			}
			var data []byte
			data, carry[i] = splitUTF8(append(carry[i], ev.Data...))
			if len(data) == 0 {
				continue
			}
			m.Data, m.Encoding = encodeData(data)
		case wrenn.ExecExited:
			m.ExitCode = &ev.ExitCode
		case wrenn.ExecFailed:
			msg := string(ev.Data)
			m.Data = &msg
		}
		if err := writeMessage(ctx, conn, m); err != nil {
			// The client is gone or stuck: cut it off, so that the reader
			// notices and stops the command.
			sending = false
			conn.CloseNow()
		}
	}
}

// splitUTF8 returns b up to its last complete rune and the incomplete
// tail (at most 3 bytes), so text split across chunks stays text.
func splitUTF8(b []byte) (whole, tail []byte) {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i], append([]byte(nil), b[i:]...)
			}
			break
		}
	}
	return b, nil
}

func encodeData(b []byte) (*string, string) {
	if utf8.Valid(b) {
		s := string(b)
		return &s, ""
	}
	s := base64.StdEncoding.EncodeToString(b)
	return &s, "base64"
}

func writeMessage(ctx context.Context, conn *websocket.Conn, m streamMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, streamWriteTimeout)
	defer cancel()
	return conn.Write(wctx, websocket.MessageText, b)
}

// sendStreamError tells the client why and closes the connection.
func (s *Server) sendStreamError(ctx context.Context, conn *websocket.Conn, err error) {
	msg := wrenn.ErrorMessage(err)
	if wrenn.ErrorCode(err) == wrenn.EInternal {
		s.log.ErrorContext(ctx, "exec stream failed", slog.Any(attrError, err))
	}
	_ = writeMessage(ctx, conn, streamMessage{Type: "error", Data: &msg})
	conn.Close(websocket.StatusPolicyViolation, "")
}
