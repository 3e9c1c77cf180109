package envd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/user"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
)

// termReader collects a terminal's output in the background.
type termReader struct {
	t    *Terminal
	mu   sync.Mutex
	out  bytes.Buffer
	exit *int
	err  error
	done chan struct{}
}

func readTerminal(t *Terminal) *termReader {
	r := &termReader{t: t, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			ev, err := t.Recv()
			r.mu.Lock()
			switch {
			case err != nil:
				r.err = err
			case ev.Type == wrenn.TerminalOutput:
				r.out.Write(ev.Data)
			case ev.Type == wrenn.TerminalExited:
				code := ev.ExitCode
				r.exit = &code
			}
			r.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return r
}

func (r *termReader) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// waitFor waits until the output holds want.
func (r *termReader) waitFor(tb testing.TB, want string) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(r.output(), want) {
		if time.Now().After(deadline) {
			tb.Fatalf("terminal output has no %q: %q", want, r.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *termReader) waitExit(tb testing.TB) int {
	tb.Helper()
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		tb.Fatalf("no exit; output %q", r.output())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exit == nil || !errors.Is(r.err, io.EOF) {
		tb.Fatalf("terminal ended without its exit: %v", r.err)
	}
	return *r.exit
}

func mustOpenTerminal(tb testing.TB, g *testGuest, req wrenn.TerminalRequest) (*Terminal, wrenn.TerminalEvent) {
	tb.Helper()
	term, err := g.OpenTerminal(context.Background(), req)
	if err != nil {
		tb.Fatalf("open terminal %+v: %v", req, err)
	}
	tb.Cleanup(func() { term.Close() })
	ev, err := term.Recv()
	if err != nil || ev.Type != wrenn.TerminalStarted {
		tb.Fatalf("first event %+v, %v", ev, err)
	}
	return term, ev
}

func mustStartTerminals(tb testing.TB) *testGuest {
	tb.Helper()
	g := MustStart(tb)
	tb.Cleanup(g.srv.terms.closeAll) // before the session ends
	return g
}

// A shell on a terminal: TERM, size, resize, job control, its own session.
func TestTerminalShell(t *testing.T) {
	g := mustStartTerminals(t)
	term, started := mustOpenTerminal(t, g, wrenn.TerminalRequest{Cmd: "bash", Args: []string{"--norc", "--noprofile", "-i"}, Env: map[string]string{"PS1": "$ "}})
	if !strings.HasPrefix(started.Tag, "pty-") || len(started.Tag) != len("pty-")+8 || started.PID <= 0 {
		t.Fatalf("started %+v", started)
	}
	r := readTerminal(term)
	must(t, term.Input([]byte("echo T=$TERM; stty size; tty; ps -o sid= -p $$\n")))
	r.waitFor(t, "T=xterm-256color")
	r.waitFor(t, "24 80")
	r.waitFor(t, "/dev/pts/")
	must(t, term.Resize(132, 43))
	must(t, term.Input([]byte("stty size\n")))
	r.waitFor(t, "43 132")
	// Job control: a background job, listed, brought to the foreground
	// and interrupted with ^C.
	must(t, term.Input([]byte("sleep 60 &\njobs\n")))
	r.waitFor(t, "Running")
	must(t, term.Input([]byte("fg\n")))
	r.waitFor(t, "sleep 60")
	time.Sleep(200 * time.Millisecond)
	must(t, term.Input([]byte{3})) // ^C
	must(t, term.Input([]byte("echo after-$?\n")))
	r.waitFor(t, "after-130")
	must(t, term.Input([]byte("exit 7\n")))
	if code := r.waitExit(t); code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}
	if _, err := g.OpenTerminal(context.Background(), wrenn.TerminalRequest{Tag: started.Tag}); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Errorf("a terminal whose exit was taken is gone: %v", err)
	}
}

// A terminal keeps running while detached; what it prints meanwhile
// reaches the next host to attach, which finds its shell as it was.
func TestTerminalReattach(t *testing.T) {
	g := mustStartTerminals(t)
	term, started := mustOpenTerminal(t, g, wrenn.TerminalRequest{Cmd: "sh"})
	r := readTerminal(term)
	must(t, term.Input([]byte("X=42; echo ready\n")))
	r.waitFor(t, "ready")
	must(t, term.Input([]byte("sleep 0.5; echo later$X\n")))
	time.Sleep(100 * time.Millisecond)
	term.Close()
	<-r.done
	if strings.Contains(r.output(), "later42") {
		t.Fatal("printed before detaching")
	}
	time.Sleep(time.Second)

	term2, again := mustOpenTerminal(t, g, wrenn.TerminalRequest{Tag: started.Tag})
	if again.Tag != started.Tag || again.PID != started.PID {
		t.Errorf("attached: %+v, want %+v", again, started)
	}
	r2 := readTerminal(term2)
	r2.waitFor(t, "later42")
	must(t, term2.Input([]byte("echo again$X\n")))
	r2.waitFor(t, "again42")

	// A third host takes over: the second is told and cut off.
	term3, _ := mustOpenTerminal(t, g, wrenn.TerminalRequest{Tag: started.Tag})
	<-r2.done
	if wrenn.ErrorCode(r2.err) != wrenn.EConflict {
		t.Errorf("the host taken over from: %v", r2.err)
	}
	r3 := readTerminal(term3)
	must(t, term3.Kill())
	if code := r3.waitExit(t); code != 128+9 {
		t.Errorf("killed: exit code %d", code)
	}
}

// A terminal outlives the session it was started on: a new host agent
// session (the agent restarted) attaches to it by its tag.
func TestTerminalOutlivesSession(t *testing.T) {
	g := mustStartTerminals(t)
	_, started := mustOpenTerminal(t, g, wrenn.TerminalRequest{Cmd: "sh", Args: []string{"-c", "sleep 0.5; echo one; sleep 0.5; echo two; sleep 60"}})
	g.Client.Close()

	host, guest := MustSocketpair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.srv.serve(ctx, guest) }()
	c, err := NewClient(host, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); cancel(); <-done })
	term, err := c.OpenTerminal(context.Background(), wrenn.TerminalRequest{Tag: started.Tag})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	r := readTerminal(term)
	r.waitFor(t, "two")
	if out := r.output(); !strings.Contains(out, "one") {
		t.Errorf("what was printed while detached is lost: %q", out)
	}
	must(t, term.Kill())
	r.waitExit(t)
}

// An exited terminal nobody was attached to keeps its exit for the next.
func TestTerminalExitWhileDetached(t *testing.T) {
	g := mustStartTerminals(t)
	term, started := mustOpenTerminal(t, g, wrenn.TerminalRequest{Cmd: "sh", Args: []string{"-c", "sleep 0.3; echo bye; exit 5"}})
	term.Close()
	time.Sleep(time.Second)
	term2, _ := mustOpenTerminal(t, g, wrenn.TerminalRequest{Tag: started.Tag})
	r := readTerminal(term2)
	if code := r.waitExit(t); code != 5 || !strings.Contains(r.output(), "bye") {
		t.Errorf("exit %d, output %q", code, r.output())
	}
}

func TestTerminalRefusals(t *testing.T) {
	g := mustStartTerminals(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  wrenn.TerminalRequest
		code string
	}{
		{"unknown tag", wrenn.TerminalRequest{Tag: "pty-00000000"}, wrenn.ENotFound},
		{"no such program", wrenn.TerminalRequest{Cmd: "/no/such/program"}, wrenn.EInvalid},
		{"no such user", wrenn.TerminalRequest{Cmd: "sh", User: "no-such-user"}, wrenn.EInvalid},
		{"no such dir", wrenn.TerminalRequest{Cmd: "sh", Dir: "/no/such/dir"}, wrenn.EInvalid},
		{"too wide", wrenn.TerminalRequest{Cmd: "sh", Cols: 1 << 20}, wrenn.EInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := g.OpenTerminal(ctx, tc.req)
			if wrenn.ErrorCode(err) != tc.code {
				t.Errorf("%v, want %s", err, tc.code)
			}
		})
	}
	var terms []*Terminal
	for range maxTerminals {
		term, _ := mustOpenTerminal(t, g, wrenn.TerminalRequest{Cmd: "sleep", Args: []string{"60"}})
		terms = append(terms, term)
	}
	if _, err := g.OpenTerminal(ctx, wrenn.TerminalRequest{Cmd: "sh"}); wrenn.ErrorCode(err) != wrenn.EConflict {
		t.Errorf("one terminal too many: %v", err)
	}
	if err := terms[0].Resize(0, 10); wrenn.ErrorCode(err) != wrenn.EInvalid {
		t.Errorf("resize to 0 columns: %v", err)
	}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// A program that never reads its terminal cannot hold up a kill behind
// the input waiting for it.
func TestTerminalKillPastUnreadInput(t *testing.T) {
	g := mustStartTerminals(t)
	term, _ := mustOpenTerminal(t, g, wrenn.TerminalRequest{Cmd: "sleep", Args: []string{"60"}})
	r := readTerminal(term)
	line := bytes.Repeat([]byte("x"), 1000)
	for range 200 {
		must(t, term.Input(append(line, '\n')))
	}
	must(t, term.Kill())
	if code := r.waitExit(t); code != 128+9 {
		t.Errorf("exit code %d", code)
	}
}

// A program that exits leaving a background process holding the terminal
// open still has its exit reported, after a short drain.
func TestTerminalExitWithBackgroundHolder(t *testing.T) {
	g := mustStartTerminals(t)
	term, _ := mustOpenTerminal(t, g, wrenn.TerminalRequest{Cmd: "sh", Args: []string{"-c", `trap "" HUP; sleep 3 & echo left; exit 4`}})
	r := readTerminal(term)
	start := time.Now()
	if code := r.waitExit(t); code != 4 || !strings.Contains(r.output(), "left") {
		t.Errorf("exit %d, output %q", code, r.output())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the exit took %s", d)
	}
}

// A terminal for another user runs as that user, in its home or, for a
// user without one, in /.
func TestTerminalUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run as another user")
	}
	g := mustStartTerminals(t)
	term, _ := mustOpenTerminal(t, g, wrenn.TerminalRequest{Cmd: "sh", Args: []string{"-c", `echo "id=$(id -u) user=$USER home=$HOME pwd=$(pwd)"`}, User: "nobody"})
	r := readTerminal(term)
	r.waitExit(t)
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody here")
	}
	dir := u.HomeDir
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		dir = "/"
	}
	want := "id=" + u.Uid + " user=nobody home=" + u.HomeDir + " pwd=" + dir + "\r\n"
	if !strings.Contains(r.output(), want) {
		t.Errorf("output %q, want %q", r.output(), want)
	}
}
