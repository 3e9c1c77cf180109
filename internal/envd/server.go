package envd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/wrennhq/wrenn"
)

// Serve serves one session over conn: the handshake, then the host's
// requests until conn fails, the host goes away or ctx ends. It closes conn,
// and returns only once every request it took has ended (the commands of
// a host that went away are killed). It returns ctx.Err() if ctx ended it.
func Serve(ctx context.Context, conn io.ReadWriteCloser, log *slog.Logger) error {
	s := newServer(log, hostSystem())
	defer s.endProcesses()
	return s.serve(ctx, conn)
}

// server is the guest side. Its system calls that change the machine are
// function fields so tests can run it on a host without changing the host.
type server struct {
	log       *slog.Logger
	sys       system
	stopGrace time.Duration // Stop: SIGTERM, then SIGKILL after this
	waitDelay time.Duration // output kept flowing after a command exits
	procs     procTable     // background processes, which outlive sessions
	terms     *terminals    // shared by every session: terminals outlive them
}

func newServer(log *slog.Logger, sys system) *server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &server{log: log, sys: sys, stopGrace: 5 * time.Second, waitDelay: 500 * time.Millisecond,
		terms: &terminals{byTag: map[string]*terminal{}}}
}

func (s *server) serve(ctx context.Context, conn io.ReadWriteCloser) error {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	br := bufio.NewReaderSize(conn, sessionBufSize)
	err := acceptHandshake(br, conn)
	if err == nil {
		err = skipToYamux(br)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("envd handshake: %w", err)
	}
	sess, err := yamux.Server(newBufferedConn(br, conn), yamuxConfig(s.log))
	if err != nil {
		return fmt.Errorf("envd start session: %w", err)
	}
	s.log.Info("envd session started")

	var wg sync.WaitGroup
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			sess.Close()
			wg.Wait()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("envd session: %w", err)
		}
		wg.Go(func() { s.handle(ctx, st, sess) })
	}
}

// peer is the guest's end of one stream.
type peer struct {
	st      *yamux.Stream
	r       *bufio.Reader
	watched chan struct{} // closed when watch has returned; nil without watch
}

func (p *peer) send(m message) error { return writeJSON(p.st, m) }

// reply sends ok, or err.
func (p *peer) reply(err error) error {
	if err != nil {
		return p.send(errorMessage(err))
	}
	return p.send(message{Type: msgOK})
}

// answer replies err (nil: ok) to the host. A reply the host is no longer
// there to take is logged: whatever it said is lost.
func (s *server) answer(ctx context.Context, p *peer, err error) {
	if serr := p.reply(err); serr != nil {
		s.log.DebugContext(ctx, "reply: host gone", slog.Any(attrReply, err), slog.Any(attrError, serr))
	}
}

// watch reads what the host sends after its request, passing messages to
// onMessage, until the host's side ends (it closed the stream, gave up, or
// the session broke). Then writes to the host are cut short and onGone runs.
func (p *peer) watch(onMessage func(message), onGone func()) {
	p.watched = make(chan struct{})
	go func() {
		defer close(p.watched)
		for {
			var m message
			if err := readMessage(p.r, &m); err != nil {
				p.st.SetWriteDeadline(time.Unix(1, 0))
				onGone()
				return
			}
			onMessage(m)
		}
	}()
}

// finish closes the guest's side of the stream and waits, for a while, for
// the host to close its side.
func (p *peer) finish() {
	p.st.Close()
	if p.watched != nil {
		p.st.SetReadDeadline(time.Now().Add(streamLinger))
		<-p.watched
	}
}

// streamReaders hold the buffered readers of streams between requests, so
// that a guest under emulation does not clear and collect one each time.
var streamReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, streamBufSize) }}

func (s *server) handle(ctx context.Context, st *yamux.Stream, sess *yamux.Session) {
	r := streamReaders.Get().(*bufio.Reader)
	r.Reset(st)
	p := &peer{st: st, r: r}
	defer func() {
		r.Reset(nil)
		streamReaders.Put(r)
	}()
	defer p.finish() // first: then nothing reads r any more
	var req request
	if err := readMessage(p.r, &req); err != nil {
		s.log.DebugContext(ctx, "read request", slog.Any(attrError, err))
		return
	}
	switch req.Op {
	case opPing:
		p.reply(nil)
	case opDetach:
		// The answer is on its way to the host once reply returns; then
		// the session ends and the port waits for the next host's hello.
		p.reply(nil)
		s.log.InfoContext(ctx, "envd detached by the host")
		sess.Close()
	case opInit:
		err := s.init(req.Init)
		if err != nil {
			s.log.WarnContext(ctx, "init", slog.Any(attrError, err))
		}
		p.reply(err)
	case opExec:
		s.exec(ctx, p, req.Exec)
	case opWrite:
		s.writeFile(ctx, p, req.Path)
	case opRead:
		s.readFile(ctx, p, req.Path)
	case opList:
		s.listDir(ctx, p, req.Path, req.Depth)
	case opMkdir, opRm, opStat, opMove:
		s.answerEntry(ctx, p, req)
	case opWatch:
		s.watchDir(ctx, p, req.Path, req.Recursive)
	// Background processes (proc.go).
	case opSpawn:
		s.spawn(ctx, p, req)
	case opProcs:
		s.listProcs(ctx, p)
	case opKill:
		s.killProc(ctx, p, req)
	case opAttach:
		s.attach(ctx, p, req)
	case opPty:
		s.terminal(ctx, p, req.Pty)
	default:
		p.reply(wrenn.Errorf(wrenn.EInvalid, "unknown operation %q", req.Op))
	}
}

// init applies what it can of p and reports what failed.
func (s *server) init(p *initParams) error {
	if p == nil {
		return wrenn.Errorf(wrenn.EInvalid, "init needs parameters")
	}
	if p.Hostname != "" && !validHostname(p.Hostname) {
		return wrenn.Errorf(wrenn.EInvalid, "hostname %q is not a valid host name", p.Hostname)
	}
	var errs []error
	if p.UnixNano != 0 {
		if err := s.sys.setClock(time.Unix(0, p.UnixNano)); err != nil {
			errs = append(errs, fmt.Errorf("set clock: %w", err))
		}
	}
	if len(p.Entropy) > 0 {
		if err := s.sys.addEntropy(p.Entropy); err != nil {
			errs = append(errs, fmt.Errorf("add entropy: %w", err))
		}
	}
	if p.Hostname != "" {
		if err := s.sys.setHostname(p.Hostname); err != nil {
			errs = append(errs, fmt.Errorf("set hostname: %w", err))
		}
	}
	return errors.Join(errs...)
}

// validHostname allows what sethostname(2) takes and resolvers expect:
// letters, digits, '-' and '.', at most 64 bytes.
func validHostname(h string) bool {
	if len(h) == 0 || len(h) > maxHostname {
		return false
	}
	for _, c := range []byte(h) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}
