package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/wrennhq/wrenn"
)

// watchMessage is what a watch sends: one "event" per change, an "error"
// before a watch that fails is closed.
type watchMessage struct {
	Type string `json:"type"`
	Op   string `json:"op,omitempty"`
	Path string `json:"path,omitempty"`
	Data string `json:"data,omitempty"`
}

// watchPingInterval is how often an idle watch checks its client is there.
const watchPingInterval = 30 * time.Second

// watchDir streams the changes under a directory of a sandbox over a
// WebSocket: GET …/files/watch?path=/abs&recursive=true. The watch is in
// place before the upgrade answers, so a client that starts a command
// once connected sees every change it makes; a bad path, a missing
// directory or a sandbox that is not running is refused with a status.
func (s *Server) watchDir(w http.ResponseWriter, r *http.Request) {
	teamID, id := caller(r).TeamID, r.PathValue("id")
	q := r.URL.Query()
	recursive := false
	if v := q.Get("recursive"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.writeError(w, r, wrenn.Errorf(wrenn.EInvalid, "recursive must be true or false"))
			return
		}
		recursive = b
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	watch, err := s.control.WatchDir(ctx, teamID, id, q.Get("path"), recursive)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer watch.Close()
	conn, err := acceptWS(w, r)
	if err != nil {
		return // Accept has answered the client
	}
	defer conn.CloseNow()
	conn.SetReadLimit(maxStreamMessage)
	// The client sends nothing; reading notices it leave and serves pings.
	go func() {
		defer cancel()
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				return
			}
		}
	}()
	go func() {
		t := time.NewTicker(watchPingInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				pctx, pcancel := context.WithTimeout(ctx, streamWriteTimeout)
				err := conn.Ping(pctx)
				pcancel()
				if err != nil {
					cancel()
					return
				}
			}
		}
	}()
	stop := context.AfterFunc(ctx, func() { watch.Close() })
	defer stop()
	for {
		e, err := watch.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return // the client left
			}
			if wrenn.ErrorCode(err) == wrenn.EInternal {
				s.log.ErrorContext(ctx, "watch failed", slog.String(attrSandboxID, id), slog.Any(attrError, err))
			}
			wctx, wcancel := context.WithTimeout(ctx, streamWriteTimeout)
			_ = wsjson.Write(wctx, conn, watchMessage{Type: "error", Data: wrenn.ErrorMessage(err)})
			wcancel()
			conn.Close(websocket.StatusNormalClosure, "watch ended")
			return
		}
		wctx, wcancel := context.WithTimeout(ctx, streamWriteTimeout)
		err = wsjson.Write(wctx, conn, watchMessage{Type: "event", Op: e.Op, Path: e.Path})
		wcancel()
		if err != nil {
			return
		}
	}
}
