package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// cliUser runs the wrenn binary as a user would, with a home of its own.
type cliUser struct {
	t   *testing.T
	env []string
}

func newCLIUser(t *testing.T) *cliUser {
	home := t.TempDir()
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "PATH=" + os.Getenv("PATH")}
	return &cliUser{t: t, env: env}
}

// run runs wrenn with args and returns its stdout, stderr and exit code.
func (u *cliUser) run(stdin string, args ...string) (string, string, int) {
	u.t.Helper()
	cmd := exec.Command(wrennBin, args...)
	cmd.Env = u.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		u.t.Fatalf("wrenn %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// must runs wrenn and fails the test unless it exits 0.
func (u *cliUser) must(args ...string) string {
	u.t.Helper()
	out, errs, code := u.run("", args...)
	if code != 0 {
		u.t.Fatalf("wrenn %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func (u *cliUser) json(v any, args ...string) {
	u.t.Helper()
	out := u.must(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		u.t.Fatalf("wrenn %v --json: %v\n%s", args, err, out)
	}
}

func TestCLI(t *testing.T) {
	s := startVMServer(t, shortTempDir(t))
	s.must(201, "POST", "/v1/auth/signup", nil, map[string]string{"email": "cli@example.com", "password": "cli-password-1"}, nil)
	u := newCLIUser(t)

	// Before logging in, every command says to.
	if _, errs, code := u.run("", "sandbox", "ls"); code == 0 || !strings.Contains(errs, "wrenn login") {
		t.Fatalf("not logged in: exit %d, %q", code, errs)
	}
	if _, errs, code := u.run("wrong-password\n", "login", "--url", s.url, "--email", "cli@example.com"); code == 0 || !strings.Contains(errs, "wrong email or password") {
		t.Fatalf("bad password: exit %d, %q", code, errs)
	}
	if _, errs, code := u.run("cli-password-1\n", "login", "--url", s.url, "--email", "cli@example.com"); code != 0 {
		t.Fatalf("login: exit %d, %s", code, errs)
	}
	cfg := filepath.Join(strings.TrimPrefix(u.env[1], "XDG_CONFIG_HOME="), "wrenn", "config.json")
	if fi, err := os.Stat(cfg); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", fi, err)
	}
	key := strings.TrimSpace(u.must("keys", "create", "cli-key", "--save"))
	if !strings.HasPrefix(key, "wrn_") && len(key) < 16 {
		t.Fatalf("key %q", key)
	}
	var keys []struct{ Name string }
	u.json(&keys, "keys", "ls")
	if len(keys) == 0 || keys[len(keys)-1].Name == "" {
		t.Fatalf("keys ls: %+v", keys)
	}

	// An API-key profile, and a key the server refuses.
	u2 := newCLIUser(t)
	if _, errs, code := u2.run("", "login", "--url", s.url, "--api-key", "wrn_not-a-key"); code == 0 || !strings.Contains(errs, "wrenn login") {
		t.Fatalf("bad key: exit %d, %q", code, errs)
	}
	u2.must("login", "--url", s.url, "--api-key", key)
	var none []struct{ ID string }
	u2.json(&none, "sandbox", "ls")
	if len(none) != 0 {
		t.Fatalf("new team's sandboxes: %+v", none)
	}
	u2.must("logout")
	if _, errs, code := u2.run("", "sandbox", "ls"); code == 0 || !strings.Contains(errs, "wrenn login") {
		t.Fatalf("after logout: exit %d, %q", code, errs)
	}

	// A new user signs up from the CLI; an email taken says so.
	u3 := newCLIUser(t)
	if _, errs, code := u3.run("signup-password-1\n", "signup", "--url", s.url, "--email", "cli-new@example.com"); code != 0 {
		t.Fatalf("signup: exit %d, %s", code, errs)
	}
	if k := strings.TrimSpace(u3.must("keys", "create", "first", "--save")); !strings.HasPrefix(k, "wrn_") {
		t.Fatalf("new user's key %q", k)
	}
	u3.json(&none, "sandbox", "ls")
	if _, errs, code := u3.run("signup-password-1\n", "signup", "--email", "cli-new@example.com"); code == 0 || !strings.Contains(errs, "already") {
		t.Fatalf("second signup: exit %d, %q", code, errs)
	}

	// Sandboxes.
	var sb struct {
		ID       string            `json:"id"`
		Status   string            `json:"status"`
		Metadata map[string]string `json:"metadata"`
	}
	u.json(&sb, "sandbox", "create", "--template", "minimal", "--vcpus", "1", "--memory", "512", "--timeout", "600", "--metadata", "who=cli", "--env", "GREETING=hello")
	if sb.ID == "" || sb.Status != "running" || sb.Metadata["who"] != "cli" {
		t.Fatalf("created %+v", sb)
	}
	t.Cleanup(func() { s.do("DELETE", "/v1/sandboxes/"+sb.ID, hdr{"X-API-Key": key}, nil) })
	var list []struct{ ID string }
	u.json(&list, "sandbox", "ls")
	if len(list) != 1 || list[0].ID != sb.ID {
		t.Fatalf("ls: %+v", list)
	}
	if table := u.must("sandbox", "ls"); !strings.Contains(table, "STATUS") || !strings.Contains(table, sb.ID) {
		t.Fatalf("ls table:\n%s", table)
	}
	var got struct{ ID, Status string }
	u.json(&got, "sandbox", "get", sb.ID)
	if got.ID != sb.ID || got.Status != "running" {
		t.Fatalf("get: %+v", got)
	}
	if _, errs, code := u.run("", "sandbox", "get", "sb-nosuch"); code == 0 || !strings.Contains(errs, "wrenn sandbox ls") {
		t.Fatalf("get unknown: exit %d, %q", code, errs)
	}

	// exec: streamed output on the right descriptors, and the exit code.
	out, errs, code := u.run("", "exec", sb.ID, "--", "sh", "-c", `echo "$GREETING out"; echo err >&2; exit 7`)
	if code != 7 || out != "hello out\n" || errs != "err\n" {
		t.Fatalf("exec: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// Live: the first line arrives before the command ends.
	cmd := exec.Command(wrennBin, "exec", sb.ID, "--", "sh", "-c", "echo first; sleep 3; echo second")
	cmd.Env = u.env
	pipe, _ := cmd.StdoutPipe()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 6)
	if _, err := io.ReadFull(pipe, first); err != nil || string(first) != "first\n" {
		t.Fatalf("first line %q %v", first, err)
	}
	if d := time.Since(start); d > 2500*time.Millisecond+time.Second {
		t.Errorf("first line after %v: not streamed", d)
	}
	rest, _ := io.ReadAll(pipe)
	if err := cmd.Wait(); err != nil || string(rest) != "second\n" {
		t.Fatalf("rest %q %v", rest, err)
	}

	// Interrupted, exec stops the command and exits 130.
	cmd = exec.Command(wrennBin, "exec", sb.ID, "--", "sh", "-c", "echo started; sleep 60")
	cmd.Env = u.env
	pipe, _ = cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(pipe, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(os.Interrupt)
	start = time.Now()
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 || time.Since(start) > 10*time.Second {
		t.Errorf("interrupted exec: %v after %v, want exit status 130 at once", err, time.Since(start))
	}

	// cp both ways.
	t.Run("cp", func(t *testing.T) { testCLICopy(t, u, sb.ID, 32<<20) })
	t.Run("cp 256MiB", func(t *testing.T) {
		if testing.Short() {
			t.Skip("copies 256 MiB each way")
		}
		testCLICopy(t, u, sb.ID, 256<<20)
	})

	t.Run("shell", func(t *testing.T) { testCLIShell(t, u, sb.ID) })

	// Completion of cp's sandbox side: the ID, then paths in the sandbox.
	u.must("exec", sb.ID, "--", "sh", "-c", "mkdir -p /root/compl/sub && touch /root/compl/a.txt")
	if out := u.must("__complete", "cp", "./x", sb.ID[:4]); !strings.Contains(out, sb.ID+":/\n") {
		t.Errorf("completing an ID:\n%s", out)
	}
	if out := u.must("__complete", "cp", "./x", sb.ID+":/root/compl/"); !strings.Contains(out, sb.ID+":/root/compl/a.txt\n") ||
		!strings.Contains(out, sb.ID+":/root/compl/sub/\n") {
		t.Errorf("completing a path:\n%s", out)
	}

	// pause and resume.
	u.json(&got, "sandbox", "pause", sb.ID)
	if got.Status != "paused" {
		t.Fatalf("pause: %+v", got)
	}
	u.json(&got, "sandbox", "resume", sb.ID)
	if got.Status != "running" {
		t.Fatalf("resume: %+v", got)
	}

	// Snapshots: create (the sandbox ends), ls, start from it, rm.
	u.must("exec", sb.ID, "--", "sh", "-c", "echo kept > /root/mark")
	var tpl struct{ Name string }
	u.json(&tpl, "snapshot", "create", sb.ID, "--name", "cli-snap")
	if tpl.Name != "cli-snap" {
		t.Fatalf("snapshot: %+v", tpl)
	}
	var tpls []struct{ Name string }
	u.json(&tpls, "snapshot", "ls")
	if len(tpls) != 1 || tpls[0].Name != "cli-snap" {
		t.Fatalf("snapshot ls: %+v", tpls)
	}
	id2 := strings.TrimSpace(u.must("sandbox", "create", "--template", "cli-snap", "-q"))
	if out := u.must("exec", id2, "--", "cat", "/root/mark"); out != "kept\n" {
		t.Errorf("from the snapshot: %q", out)
	}
	u.must("sandbox", "rm", id2)
	u.must("snapshot", "rm", "cli-snap")
	u.json(&tpls, "snapshot", "ls")
	if len(tpls) != 0 {
		t.Fatalf("after rm: %+v", tpls)
	}
	u.json(&list, "sandbox", "ls")
	if len(list) != 0 {
		t.Fatalf("sandboxes left: %+v", list)
	}
}

// testCLICopy copies size random bytes into the sandbox and back.
func testCLICopy(t *testing.T, u *cliUser, id string, size int) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, int64(size)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := h.Sum(nil)
	u.must("cp", src, id+":/root/big.bin")
	if out := u.must("exec", id, "--", "sha256sum", "/root/big.bin"); !strings.HasPrefix(out, hex.EncodeToString(want)) {
		t.Fatalf("in the sandbox: %q, want %x", out, want)
	}
	u.must("cp", id+":/root/big.bin", dir) // into a directory: its name
	g, err := os.Open(filepath.Join(dir, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	h.Reset()
	if _, err := io.Copy(h, g); err != nil {
		t.Fatal(err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		t.Fatalf("copied back %x, want %x", got, want)
	}
	if size <= 32<<20 {
		// On a terminal, a progress bar on stderr that reaches 100%.
		cmd := exec.Command(wrennBin, "cp", id+":/root/big.bin", filepath.Join(dir, "again.bin"))
		cmd.Env = u.env
		f, err := pty.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		shown, _ := io.ReadAll(f) // until wrenn exits and the pty closes
		f.Close()
		if err := cmd.Wait(); err != nil || !strings.Contains(string(shown), "100%") {
			t.Errorf("cp on a terminal: %v, showed %q", err, shown)
		}
	}
	u.must("exec", id, "--", "rm", "/root/big.bin")
	if _, errs, code := u.run("", "cp", id+":/root/no-such", dir); code == 0 || errs == "" {
		t.Errorf("copying a missing file: exit %d %q", code, errs)
	}
}

// testCLIShell types into `wrenn shell` through a pseudo-terminal.
func testCLIShell(t *testing.T, u *cliUser, id string) {
	cmd := exec.Command(wrennBin, "shell", id)
	cmd.Env = append(u.env, "TERM=xterm")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 100, Rows: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	chunks := make(chan []byte, 64)
	go func() {
		for {
			b := make([]byte, 4096)
			n, err := f.Read(b)
			if n > 0 {
				chunks <- b[:n]
			}
			if err != nil {
				close(chunks)
				return
			}
		}
	}()
	waitFor := func(s string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for !strings.Contains(buf.String(), s) {
			select {
			case b, ok := <-chunks:
				if !ok {
					t.Fatalf("shell ended before %q:\n%s", s, buf.String())
				}
				buf.Write(b)
			case <-deadline:
				t.Fatalf("no %q within 30s:\n%s", s, buf.String())
			}
		}
	}
	if _, err := f.Write([]byte("stty size; echo h$((1+0))i\n")); err != nil {
		t.Fatal(err)
	}
	waitFor("h1i")
	waitFor("30 100")
	_ = pty.Setsize(f, &pty.Winsize{Cols: 120, Rows: 40}) // SIGWINCH to wrenn
	time.Sleep(500 * time.Millisecond)
	if _, err := f.Write([]byte("stty size\n")); err != nil {
		t.Fatal(err)
	}
	waitFor("40 120")
	if _, err := f.Write([]byte("exit 3\n")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Errorf("shell exit: %v, want exit status 3", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("wrenn shell did not exit:\n%s", buf.String())
	}
}
