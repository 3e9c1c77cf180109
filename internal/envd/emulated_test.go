package envd

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStartProcessKeepsUsersSlack shows a process started from a thread
// with a coarse timer slack (one sysmon made, once tuned) gets the slack
// envd started with, not the thread's.
func TestStartProcessKeepsUsersSlack(t *testing.T) {
	base, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(base), 0, 0, 0)
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, sysmonSlack, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	slackOf := func(start func(*exec.Cmd) error) int {
		t.Helper()
		cmd := exec.Command("cat", "/proc/self/timerslack_ns")
		var out strings.Builder
		cmd.Stdout = &out
		if err := start(cmd); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(out.String()))
		if err != nil {
			t.Fatalf("timerslack_ns: %q", out.String())
		}
		return n
	}
	// The control: started as it was before, the child inherits the thread's.
	if got := slackOf((*exec.Cmd).Start); got != sysmonSlack {
		t.Fatalf("a plain start gave the child a slack of %d ns, want the thread's %d", got, sysmonSlack)
	}
	userSlack.Store(int64(base))
	defer userSlack.Store(0)
	if got := slackOf(func(c *exec.Cmd) error { return startProcess(c.Start) }); got != base {
		t.Errorf("the child's timer slack is %d ns, want envd's own %d", got, base)
	}
}

// TestTuneForEmulation gives this process's sysmon its slack, and the
// processes it starts keep the one it started with.
func TestTuneForEmulation(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("setting another thread's timer slack needs CAP_SYS_NICE")
	}
	base, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := TuneForEmulation(slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	tid, err := sysmonThread()
	if err != nil {
		t.Fatal(err)
	}
	file := "/proc/" + strconv.Itoa(tid) + "/timerslack_ns"
	defer func() {
		os.WriteFile(file, []byte(strconv.Itoa(base)), 0)
		userSlack.Store(0)
	}()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(sysmonSlack) {
		t.Errorf("sysmon's (thread %d) timer slack is %s ns, want %d", tid, got, sysmonSlack)
	}
	if got := userSlack.Load(); got != int64(base) {
		t.Errorf("users' slack %d, want %d", got, base)
	}
}
