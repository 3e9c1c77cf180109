// Package e2e drives Wrenn from outside: it builds the wrenn binary, starts
// it as a user would and speaks to it over real HTTP, with every exchange
// checked against the contract.
package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/spectest"
)

// wrennBin is the binary under test, built once by TestMain.
var wrennBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wrenn-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wrennBin = filepath.Join(dir, "wrenn")
	build := exec.Command("go", "build", "-o", wrennBin, "github.com/wrennhq/wrenn/cmd/wrenn")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build wrenn:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	before, groupsBefore, tablesBefore := netnsNames(), cgroupNames(), nftTables()
	code := m.Run()
	os.RemoveAll(dir)
	// An agent keeps its host firewall table when it stops, so that a
	// restarted one's adopted sandboxes stay isolated: the suite, which
	// started every agent, removes the tables it made.
	for name := range nftTables() {
		if !tablesBefore[name] {
			if out, err := exec.Command("nft", "delete", "table", "inet", name).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "remove nft table inet %s the tests made: %v: %s\n", name, err, out)
			}
		}
	}
	for name := range cgroupNames() {
		if !groupsBefore[name] {
			fmt.Fprintf(os.Stderr, "the tests left control group %s behind\n", name)
			if code == 0 {
				code = 1
			}
		}
	}
	// The whole suite must leave the host as it found it. (An agent the
	// tests start may sweep away what an earlier crash left, so fewer is
	// fine.)
	for name := range netnsNames() {
		if !before[name] {
			fmt.Fprintf(os.Stderr, "the tests left network namespace %s behind\n", name)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// cgroupNames lists the sandboxes' control groups on this host, on v2 or
// in any v1 hierarchy.
func cgroupNames() map[string]bool {
	names := map[string]bool{}
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/wrenn/*/")
	v2, _ := filepath.Glob("/sys/fs/cgroup/wrenn/*/")
	for _, d := range append(dirs, v2...) {
		names[filepath.Clean(d)] = true
	}
	return names
}

func netnsNames() map[string]bool {
	ents, _ := os.ReadDir("/run/netns")
	names := make(map[string]bool, len(ents))
	for _, e := range ents {
		names[e.Name()] = true
	}
	return names
}

// nftTables lists the host's inet nftables tables.
func nftTables() map[string]bool {
	names := map[string]bool{}
	out, err := exec.Command("nft", "list", "tables", "inet").Output()
	if err != nil {
		return names
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "table" {
			names[f[2]] = true
		}
	}
	return names
}

// server is a running `wrenn server` process.
type server struct {
	tb      testing.TB
	cmd     *exec.Cmd
	url     string
	client  *http.Client
	logs    *logBuffer
	done    chan error
	dataDir string
}

var listenLine = regexp.MustCompile(`wrenn server listening.* addr=(\S+)`)

// startServer runs `wrenn server` on a free loopback port with dataDir and
// extra environment, waits until it listens, and stops it at cleanup.
func startServer(tb testing.TB, dataDir string, env ...string) *server {
	tb.Helper()
	return startServerIn(tb, "", dataDir, env...)
}

// startServerIn is startServer with a working directory; when dotEnv is
// not empty, the extra variables go into workDir/.env instead of the
// process environment.
func startServerIn(tb testing.TB, dotEnv, dataDir string, env ...string) *server {
	tb.Helper()
	return startServerAt(tb, "127.0.0.1:0", dotEnv, dataDir, env...)
}

// startServerListen is startServer on a given listen address.
func startServerListen(tb testing.TB, listen, dataDir string, env ...string) *server {
	tb.Helper()
	return startServerAt(tb, listen, "", dataDir, env...)
}

func startServerAt(tb testing.TB, listen, dotEnv, dataDir string, env ...string) *server {
	tb.Helper()
	cmd := exec.Command(wrennBin, "server", "--listen", listen, "--data-dir", dataDir)
	cmd.Dir = tb.TempDir()                                  // no stray .env
	cmd.Env = append(os.Environ(), "WRENN_LOG_LEVEL=debug") // the most the log ever says
	if dotEnv != "" {
		cmd.Dir = dotEnv
		if err := os.WriteFile(filepath.Join(dotEnv, ".env"), []byte(strings.Join(env, "\n")+"\n"), 0o600); err != nil {
			tb.Fatal(err)
		}
	} else {
		cmd.Env = append(cmd.Env, env...)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	s := &server{tb: tb, cmd: cmd, logs: &logBuffer{}, done: make(chan error, 1), dataDir: dataDir}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.logs.WriteString(line + "\n")
			if m := listenLine.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		s.done <- cmd.Wait()
	}()
	tb.Cleanup(func() { s.stop() })
	select {
	case a := <-addr:
		s.url = "http://" + a
	case err := <-s.done:
		tb.Fatalf("wrenn server exited before listening: %v\n%s", err, s.logs)
	case <-time.After(30 * time.Second):
		tb.Fatalf("wrenn server did not listen within 30s\n%s", s.logs)
	}
	// Generous: a 256 MiB transfer to a guest under TCG on a busy host is slow.
	s.client = &http.Client{Transport: spectest.Transport(tb, nil), Timeout: 10 * time.Minute}
	return s
}

// stop sends SIGTERM and expects a clean exit.
func (s *server) stop() {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			s.tb.Errorf("wrenn server exited with %v\n%s", err, s.logs)
		}
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.tb.Errorf("wrenn server ignored SIGTERM\n%s", s.logs)
	}
}

// logBuffer collects a server's log lines; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type hdr map[string]string

func (s *server) do(method, path string, h hdr, body any) (int, []byte) {
	s.tb.Helper()
	code, out, err := s.send(method, path, h, body)
	if err != nil {
		s.tb.Fatalf("%s %s: %v", method, path, err)
	}
	return code, out
}

func (s *server) must(want int, method, path string, h hdr, body, v any) {
	s.tb.Helper()
	got, out := s.do(method, path, h, body)
	if got != want {
		s.tb.Fatalf("%s %s = %d, want %d: %s", method, path, got, want, out)
	}
	if v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			s.tb.Fatalf("decode %s: %v", out, err)
		}
	}
}

func errorCode(tb testing.TB, body []byte) string {
	tb.Helper()
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		tb.Fatalf("not an envelope: %s", body)
	}
	return e.Error.Code
}

func bearer(tok string) hdr { return hdr{"Authorization": "Bearer " + tok} }

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// shortTempDir is a temporary directory with a short path: sandbox run
// directories hold Unix sockets, whose paths must fit in 108 bytes.
func shortTempDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("/tmp", "wr")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
