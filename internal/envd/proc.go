package envd

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wrennhq/wrenn"
)

// Background processes live in the server, not in a session: they run on
// when the host that started them goes away, and a later session (a host
// agent that restarted, a VM restored from a snapshot) finds them, their
// output and their tags as they were.

// Bounds of the process table.
const (
	maxProcs       = 256              // entries, running and exited
	maxExitedProcs = 32               // exited entries kept
	exitedKeep     = 10 * time.Minute // how long an exited entry is kept
	maxProcEntry   = 64 << 10         // a background process's cmd and args, encoded
	maxTag         = 128
	procsBatch     = 256 << 10 // a batch of the listing, encoded, about
	// killGracePeriod is kill's wait between SIGTERM and SIGKILL: short,
	// since the API answers a kill once the process has exited, and the
	// SDK gives up on an answer after 5 s.
	killGracePeriod = 2 * time.Second
)

// procTable is the background processes of one envd.
type procTable struct {
	limit int // entries; 0 means maxProcs

	mu    sync.Mutex
	byPID map[int]*bgProc
	byTag map[string]*bgProc // the latest process to hold each tag
	seq   int64
	wg    sync.WaitGroup // the goroutines that wait for processes
}

// bgProc is one background process.
type bgProc struct {
	procEntry
	seq  int64
	pr   *process
	out  *outputLog
	done chan struct{} // closed once the exit is recorded
	// The read ends of its output, closed by endProcesses to stop reading
	// from children that escaped its group.
	outR, errR *os.File

	exitedAt time.Time // set with Running false, under the table's mu
}

// procEntry is a process as the guest reports it.
type procEntry struct {
	PID      int      `json:"pid"`
	Tag      string   `json:"tag"`
	Cmd      string   `json:"cmd"`
	Args     []string `json:"args,omitempty"`
	Running  bool     `json:"running"`
	ExitCode int      `json:"exit_code"`
}

// checkTag refuses a tag a selector could not name: a number is a pid.
func checkTag(tag string) error {
	switch {
	case len(tag) > maxTag:
		return wrenn.Errorf(wrenn.EInvalid, "tag must be at most %d bytes", maxTag)
	case !utf8.ValidString(tag) || strings.ContainsFunc(tag, func(r rune) bool { return r == '/' || unicode.IsControl(r) }):
		return wrenn.Errorf(wrenn.EInvalid, "tag must be text without '/' or control characters")
	}
	if _, err := strconv.Atoi(tag); err == nil {
		return wrenn.Errorf(wrenn.EInvalid, "tag must not be a number: a number selects a process by pid")
	}
	return nil
}

// newTag makes up a tag as the 0.1.5 contract does: "proc-" and 8 hex digits.
func newTag() string {
	var b [4]byte
	rand.Read(b[:])
	return "proc-" + hex.EncodeToString(b[:])
}

// spawn starts a background process and answers its pid and tag.
func (s *server) spawn(ctx context.Context, p *peer, req request) {
	bp, err := s.startProcess(req)
	if err != nil {
		if wrenn.ErrorCode(err) == wrenn.EInternal {
			s.log.WarnContext(ctx, "spawn", slog.Any(attrError, err))
		}
		s.answer(ctx, p, err)
		return
	}
	if err := p.send(message{Type: msgOK, PID: bp.PID, Tag: bp.Tag}); err != nil {
		s.log.DebugContext(ctx, "reply: host gone", slog.Any(attrError, err))
	}
}

// spawnCommand checks a spawn request and builds its command. A program
// that cannot be run is the request's fault: there is no stream to report
// it on as exec does.
func spawnCommand(req request) (*exec.Cmd, error) {
	m := req.Exec
	if m == nil {
		return nil, wrenn.Errorf(wrenn.EInvalid, "spawn needs parameters")
	}
	if err := checkTag(req.Tag); err != nil {
		return nil, err
	}
	if b, err := encodeJSON(procEntry{Cmd: m.Cmd, Args: m.Args}); err != nil || len(b) > maxProcEntry {
		return nil, wrenn.Errorf(wrenn.EInvalid, "cmd and args of a background process must be at most %d bytes", maxProcEntry)
	}
	cmd, err := command(&execParams{Cmd: m.Cmd, Args: m.Args, Env: m.Env, Dir: m.Dir})
	if se, ok := errors.AsType[*startError](err); ok {
		return nil, wrenn.Errorf(wrenn.EInvalid, "%s", se.msg)
	}
	return cmd, err
}

func (s *server) startProcess(req request) (*bgProc, error) {
	cmd, err := spawnCommand(req)
	if err != nil {
		return nil, err
	}
	m := req.Exec
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("spawn: pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("spawn: pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	closeAll := func() {
		for _, f := range []*os.File{outR, outW, errR, errW} {
			f.Close()
		}
	}

	t := &s.procs
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune(time.Now())
	tag := req.Tag
	if tag == "" {
		for tag = newTag(); t.byTag[tag] != nil; tag = newTag() {
		}
	} else if old := t.byTag[tag]; old != nil && old.Running {
		closeAll()
		return nil, wrenn.Errorf(wrenn.EConflict, "a running process already has the tag %q", tag)
	}
	if limit := cmp.Or(t.limit, maxProcs); len(t.byPID) >= limit && !t.dropOldestExited() {
		closeAll()
		return nil, wrenn.Errorf(wrenn.EQuotaExceeded, "the sandbox already runs %d background processes; end one first", limit)
	}
	if err := startProcess(cmd.Start); err != nil {
		closeAll()
		err = startFailure(program(cmd), err)
		if se, ok := errors.AsType[*startError](err); ok {
			return nil, wrenn.Errorf(wrenn.EInvalid, "%s", se.msg)
		}
		return nil, err
	}
	outW.Close()
	errW.Close()
	pid := cmd.Process.Pid
	log := s.log.With(slog.Int(attrPID, pid))
	t.seq++
	bp := &bgProc{
		procEntry: procEntry{PID: pid, Tag: tag, Cmd: m.Cmd, Args: m.Args, Running: true},
		seq:       t.seq,
		pr:        &process{pid: pid, grace: min(s.stopGrace, killGracePeriod), log: log},
		out:       newOutputLog(wrenn.MaxProcessOutput),
		done:      make(chan struct{}),
		outR:      outR,
		errR:      errR,
	}
	if old := t.byPID[pid]; old != nil {
		t.remove(old) // an exited process whose pid came round again
	}
	if t.byPID == nil {
		t.byPID, t.byTag = map[int]*bgProc{}, map[string]*bgProc{}
	}
	t.byPID[pid], t.byTag[tag] = bp, bp
	log.Debug("background process started", slog.String(attrCmd, m.Cmd), slog.String(attrTag, tag))
	t.wg.Go(func() { s.watchProcess(bp, cmd, outR, errR) })
	return bp, nil
}

// watchProcess copies a background process's output into its log until
// it exits, then records its exit. Children that keep its output open (a
// server it started with &) are not cut off, as exec cuts them off, with
// EPIPE: their output goes on into the log until they close it, and the
// exit is recorded once the leader has exited and the output that came
// with it (within waitDelay) is in.
func (s *server) watchProcess(bp *bgProc, cmd *exec.Cmd, outR, errR *os.File) {
	defer outR.Close()
	defer errR.Close()
	var pumps sync.WaitGroup
	pumps.Go(func() { copyOutput(bp.out, frameStdout, outR, bp.pr.log) })
	pumps.Go(func() { copyOutput(bp.out, frameStderr, errR, bp.pr.log) })
	werr := cmd.Wait()
	bp.pr.exited()
	waitFor(&pumps, s.waitDelay)
	code := exitSignalBase + int(syscall.SIGKILL) // what little there is to say of a lost process
	if cmd.ProcessState != nil {
		code = exitCode(cmd.ProcessState)
	} else {
		bp.pr.log.Warn("background process: wait", slog.Any(attrError, werr))
	}
	t := &s.procs
	t.mu.Lock()
	bp.Running, bp.ExitCode, bp.exitedAt = false, code, time.Now()
	t.mu.Unlock()
	bp.out.exit(code)
	close(bp.done)
	bp.pr.log.Debug("background process exited", slog.Int(attrCode, code))
	// Drop the entry once it is past keeping, even if nobody asks again.
	time.AfterFunc(exitedKeep+time.Second, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.prune(time.Now())
	})
	pumps.Wait()
}

// copyOutput reads one of a process's outputs into its log.
func copyOutput(l *outputLog, typ byte, r *os.File, log *slog.Logger) {
	buf := make([]byte, outputChunkSize)
	for {
		n, err := r.Read(buf)
		l.write(typ, buf[:n])
		if err != nil {
			if !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.EOF) {
				log.Warn("read background process output", slog.Any(attrError, err))
			}
			return
		}
	}
}

// prune drops exited entries past their keeping. The caller holds mu.
func (t *procTable) prune(now time.Time) {
	var exited []*bgProc
	for _, bp := range t.byPID {
		switch {
		case bp.Running:
		case now.Sub(bp.exitedAt) > exitedKeep || now.Before(bp.exitedAt.Add(-exitedKeep)):
			t.remove(bp) // kept long enough (or the clock was set far back)
		default:
			exited = append(exited, bp)
		}
	}
	if len(exited) > maxExitedProcs {
		slices.SortFunc(exited, func(a, b *bgProc) int { return cmp.Compare(a.seq, b.seq) })
		for _, bp := range exited[:len(exited)-maxExitedProcs] {
			t.remove(bp)
		}
	}
}

// dropOldestExited drops the exited entry started first, if there is one.
func (t *procTable) dropOldestExited() bool {
	var oldest *bgProc
	for _, bp := range t.byPID {
		if !bp.Running && (oldest == nil || bp.seq < oldest.seq) {
			oldest = bp
		}
	}
	if oldest == nil {
		return false
	}
	t.remove(oldest)
	return true
}

func (t *procTable) remove(bp *bgProc) {
	if t.byPID[bp.PID] == bp {
		delete(t.byPID, bp.PID)
	}
	if t.byTag[bp.Tag] == bp {
		delete(t.byTag, bp.Tag)
	}
}

// find returns the process sel names: by pid when it is set, else by tag.
func (t *procTable) find(pid int, tag string) (*bgProc, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune(time.Now())
	var bp *bgProc
	if pid > 0 {
		bp = t.byPID[pid]
	} else if tag != "" {
		bp = t.byTag[tag]
	}
	if bp == nil {
		if pid > 0 {
			return nil, wrenn.Errorf(wrenn.ENotFound, "no background process has pid %d", pid)
		}
		return nil, wrenn.Errorf(wrenn.ENotFound, "no background process has the tag %q", tag)
	}
	return bp, nil
}

// list returns the table, oldest first.
func (t *procTable) list() []procEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune(time.Now())
	bps := make([]*bgProc, 0, len(t.byPID))
	for _, bp := range t.byPID {
		bps = append(bps, bp)
	}
	slices.SortFunc(bps, func(a, b *bgProc) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]procEntry, len(bps))
	for i, bp := range bps {
		out[i] = bp.procEntry
	}
	return out
}

// listProcs sends the table in batches, then ok.
func (s *server) listProcs(ctx context.Context, p *peer) {
	var batch []procEntry
	size := 0
	for _, e := range s.procs.list() {
		b, _ := encodeJSON(e)
		if size+len(b) > procsBatch && len(batch) > 0 {
			if err := p.send(message{Type: msgProcs, Procs: batch}); err != nil {
				return // the host is gone
			}
			batch, size = nil, 0
		}
		batch = append(batch, e)
		size += len(b)
	}
	if len(batch) > 0 {
		if err := p.send(message{Type: msgProcs, Procs: batch}); err != nil {
			return
		}
	}
	s.answer(ctx, p, nil)
}

// killGrace bounds how long kill waits past the stop grace for the leader.
const killGrace = 10 * time.Second

// killProc ends a running process's group: SIGTERM, then SIGKILL after
// killGracePeriod, or SIGKILL at once. It answers once the leader has
// exited, and then kills what is left of the group.
func (s *server) killProc(ctx context.Context, p *peer, req request) {
	s.answer(ctx, p, s.endProcess(ctx, req.PID, req.Tag, req.Signal))
}

func (s *server) endProcess(ctx context.Context, pid int, tag, sig string) error {
	bp, err := s.procs.find(pid, tag)
	if err != nil {
		return err
	}
	select {
	case <-bp.done:
		return wrenn.Errorf(wrenn.ENotFound, "background process %d (%s) has already exited with code %d", bp.PID, bp.Tag, bp.ExitCode)
	default:
	}
	switch sig {
	case "", string(wrenn.SIGTERM):
		bp.pr.stop()
	case string(wrenn.SIGKILL):
		bp.pr.signal(syscall.SIGKILL)
	default:
		return wrenn.Errorf(wrenn.EInvalid, "signal must be SIGTERM or SIGKILL")
	}
	t := time.NewTimer(bp.pr.grace + killGrace)
	defer t.Stop()
	select {
	case <-bp.done:
	case <-t.C:
		return fmt.Errorf("kill: process %d did not exit", bp.PID)
	case <-ctx.Done():
		return ctx.Err()
	}
	s.procs.killStragglers(bp)
	return nil
}

// killStragglers kills what is left of an exited process's group: members
// that ignored SIGTERM, or that the leader left behind. A group whose id
// has become a new process's (the pid came round) is not touched.
func (t *procTable) killStragglers(bp *bgProc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur := t.byPID[bp.PID]; cur != nil && cur != bp {
		return
	}
	if err := syscall.Kill(-bp.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		bp.pr.log.Warn("kill the rest of the process group", slog.Any(attrError, err))
	}
}

// attach streams a process's output to the host: start, what the log
// holds, live output, then exit. The host closing its side detaches; the
// process runs on.
func (s *server) attach(ctx context.Context, p *peer, req request) {
	bp, err := s.procs.find(req.PID, req.Tag)
	if err != nil {
		s.answer(ctx, p, err)
		return
	}
	if err := p.send(message{Type: msgStart, PID: bp.PID, Tag: bp.Tag}); err != nil {
		return
	}
	gone := make(chan struct{})
	p.watch(func(message) {}, func() { close(gone) })
	buf := make([]byte, frameHeaderSize+outputChunkSize)
	var off int64
	for {
		r := bp.out.read(off, buf[frameHeaderSize:])
		off = r.next
		switch {
		case r.n > 0:
			putHeader(buf, r.typ, r.n)
			if _, err := p.st.Write(buf[:frameHeaderSize+r.n]); err != nil {
				return // the host is gone
			}
		case r.exited:
			if err := p.send(message{Type: msgExit, ExitCode: r.code}); err != nil {
				s.log.DebugContext(ctx, "send exit", slog.Any(attrError, err))
			}
			return
		default:
			select {
			case <-r.wait:
			case <-gone:
				return
			}
		}
	}
}

// endProcesses kills every background process's group and waits for
// their goroutines: envd is stopping.
func (s *server) endProcesses() {
	s.procs.mu.Lock()
	for _, bp := range s.procs.byPID {
		if err := syscall.Kill(-bp.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			bp.pr.log.Warn("kill the process group", slog.Any(attrError, err))
		}
		bp.outR.Close()
		bp.errR.Close()
	}
	s.procs.mu.Unlock()
	s.procs.wg.Wait()
}
