package httpapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/coder/websocket"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
)

// Background processes: POST …/exec with "background": true starts one
// (202); GET …/processes lists the running ones; DELETE
// …/processes/{selector} ends one; GET …/processes/{selector}/stream is a
// WebSocket of its output, from what the guest still holds of it.

type backgroundResponse struct {
	SandboxID string `json:"sandbox_id"`
	Cmd       string `json:"cmd"`
	PID       int    `json:"pid"`
	Tag       string `json:"tag"`
}

// startBackground answers a background exec.
func (s *Server) startBackground(w http.ResponseWriter, r *http.Request, req execRequest) {
	id := r.PathValue("id")
	p, err := s.control.StartProcess(r.Context(), caller(r).TeamID, id, req.params(), req.Tag)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, backgroundResponse{SandboxID: id, Cmd: req.Cmd, PID: p.PID, Tag: p.Tag})
}

type processEntry struct {
	PID  int      `json:"pid"`
	Tag  string   `json:"tag"`
	Cmd  string   `json:"cmd"`
	Args []string `json:"args"`
}

type processList struct {
	Processes []processEntry `json:"processes"`
}

func (s *Server) listProcesses(w http.ResponseWriter, r *http.Request) {
	ps, err := s.control.ListProcesses(r.Context(), caller(r).TeamID, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := processList{Processes: make([]processEntry, len(ps))}
	for i, p := range ps {
		out.Processes[i] = processEntry{PID: p.PID, Tag: p.Tag, Cmd: p.Cmd, Args: p.Args}
		if out.Processes[i].Args == nil {
			out.Processes[i].Args = []string{}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// killProcess ends a process's group: SIGTERM, then SIGKILL after a grace
// period; ?signal=SIGKILL kills it at once. It answers once it has exited.
func (s *Server) killProcess(w http.ResponseWriter, r *http.Request) {
	sel, err := control.ParseSelector(r.PathValue("selector"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sig := wrenn.Signal(r.URL.Query().Get("signal"))
	if err := s.control.KillProcess(r.Context(), caller(r).TeamID, r.PathValue("id"), sel, sig); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// processStream streams a process's output over a WebSocket: start, what
// the guest holds of its output, live output, then exit, after which the
// server closes. A client that goes away only ends the stream.
func (s *Server) processStream(w http.ResponseWriter, r *http.Request) {
	teamID, id := caller(r).TeamID, r.PathValue("id")
	sel, err := control.ParseSelector(r.PathValue("selector"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	// Connect before the upgrade, so a process that is not there is a
	// status and the envelope.
	st, err := s.control.ConnectProcess(ctx, teamID, id, sel)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer st.Close()
	conn, err := acceptWS(w, r)
	if err != nil {
		return // Accept has answered the client
	}
	defer conn.CloseNow()
	conn.SetReadLimit(maxStreamMessage)
	// The client sends nothing we need; reading notices it going away.
	go func() {
		defer cancel()
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				return
			}
		}
	}()
	err = s.forwardProcess(ctx, conn, st)
	switch {
	case err == nil:
		conn.Close(websocket.StatusNormalClosure, "process exited")
	case ctx.Err() != nil:
		// The client went away.
	default:
		s.sendStreamError(ctx, conn, err)
	}
}

// forwardProcess sends the stream's events to the client until the exit,
// and returns nil then, or what ended it.
func (s *Server) forwardProcess(ctx context.Context, conn *websocket.Conn, st wrenn.ProcessStream) error {
	var carry [2][]byte // incomplete UTF-8 tails of stdout and stderr
	for {
		ev, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "process stream", slog.Any(attrError, err))
			}
			return err
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
		default:
			continue
		}
		if err := writeMessage(ctx, conn, m); err != nil {
			return err
		}
	}
}
