package main

import (
	"bytes"
	"context"
	"debug/elf"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/envd"
)

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bootConfig
	}{
		{"guest contract", "console=ttyS0 reboot=t panic=-1 root=/dev/vda rw init=/usr/local/bin/envd quiet " +
			"wrenn.ip=169.254.0.21/30 wrenn.gw=169.254.0.22 wrenn.dns=1.1.1.1 wrenn.hostname=sb-abc virtio_mmio.device=4K@0xfeb00000:12\n",
			bootConfig{IP: "169.254.0.21/30", Gateway: "169.254.0.22", DNS: []string{"1.1.1.1"}, Hostname: "sb-abc"}},
		{"several nameservers", "wrenn.dns=1.1.1.1,8.8.8.8,", bootConfig{DNS: []string{"1.1.1.1", "8.8.8.8"}}},
		{"under emulation", "norandmaps wrenn.emulated=1", bootConfig{Emulated: true}},
		{"emulated other than 1", "wrenn.emulated=yes", bootConfig{}},
		{"nothing of ours", "quiet splash", bootConfig{}},
		{"empty", "", bootConfig{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseCmdline(tt.in)
			if got.IP != tt.want.IP || got.Gateway != tt.want.Gateway || got.Hostname != tt.want.Hostname || got.Emulated != tt.want.Emulated || !slices.Equal(got.DNS, tt.want.DNS) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWriteResolvConf(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	if err := os.Symlink("/run/systemd/resolve/stub-resolv.conf", path); err != nil {
		t.Fatal(err)
	}
	if err := writeResolvConf(path, bootConfig{DNS: []string{"1.1.1.1", "2606:4700:4700::1111"}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "nameserver 1.1.1.1\nnameserver 2606:4700:4700::1111\n"; string(b) != want {
		t.Errorf("got %q, want %q", b, want)
	}
	if err := writeResolvConf(path, bootConfig{DNS: []string{"not-an-ip"}}); err == nil {
		t.Error("took a nameserver that is not an address")
	}
}

var build struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// MustBuild builds envd as images get it: static, CGO_ENABLED=0.
func MustBuild(tb testing.TB) string {
	tb.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "envd-build-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "envd")
		cmd := exec.Command("go", "build", "-o", build.path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		tb.Fatalf("build envd: %v\n%s", build.err, build.out)
	}
	return build.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.path != "" {
		os.RemoveAll(filepath.Dir(build.path))
	}
	os.Exit(code)
}

func TestBinaryIsStatic(t *testing.T) {
	f, err := elf.Open(MustBuild(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("envd has a program interpreter: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("envd needs %v", libs)
	}
}

// startEnvd runs the binary with args and stops it with SIGTERM at the end
// of the test, checking it exits cleanly.
func startEnvd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(MustBuild(t), args...)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("envd exited: %v\n%s", err, logs.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("envd did not stop on SIGTERM\n%s", logs.String())
		}
	})
	return cmd
}

// dialEnvd connects a client to the envd serving sock, as the host agent
// does: retrying until a session is up, since envd may be (re)starting.
func dialEnvd(t *testing.T, sock string) *envd.Client {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := tryDial(sock)
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect to envd: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tryDial(sock string) (*envd.Client, error) {
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	c, err := envd.NewClient(conn, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func mustExec(t *testing.T, c *envd.Client, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.Exec(ctx, wrenn.ExecRequest{Cmd: cmd})
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("exec %q: exit %d: %s", cmd, res.ExitCode, res.Stderr)
	}
	return string(res.Stdout)
}

// TestServeListen drives the real binary as the host agent would.
func TestServeListen(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "envd.sock")
	startEnvd(t, "serve", "--listen", "unix:"+sock)
	c := dialEnvd(t, sock)
	if got := mustExec(t, c, "echo hello"); got != "hello\n" {
		t.Errorf("stdout %q", got)
	}
	// Outside a VM, Init must leave this machine's name and clock alone.
	before, _ := os.Hostname()
	if err := c.Init(context.Background(), envd.InitRequest{Now: time.Unix(0, 0), Entropy: []byte("seed"), Hostname: "sb-not-here"}); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Hostname(); after != before || time.Since(time.Unix(0, 0)) < 365*24*time.Hour {
		t.Fatalf("Init changed the machine: hostname %q → %q", before, after)
	}
	path := filepath.Join(t.TempDir(), "f")
	body := bytes.Repeat([]byte("wrenn"), 1<<18)
	if err := c.WriteFile(context.Background(), path, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	rc, err := c.ReadFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("read back %d bytes, %v", len(got), err)
	}
	// A second host connection while the first is open, then after it.
	c2 := dialEnvd(t, sock)
	mustExec(t, c2, "true")
	c.Close()
	mustExec(t, c2, "true")
}

// TestInit runs envd as PID 1 of fresh PID, mount, UTS and network
// namespaces: it must mount, name, address and route as docs/GUEST.md
// says, reap orphans, restart its server, and shut down on SIGTERM.
func TestInit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	// Not under /tmp or /run: envd mounts over those.
	dir, err := os.MkdirTemp("/var/tmp", "envd-init-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cmdline := filepath.Join(dir, "cmdline")
	resolv := filepath.Join(dir, "resolv.conf")
	sock := filepath.Join(dir, "envd.sock")
	os.WriteFile(cmdline, []byte("quiet wrenn.ip=169.254.0.21/30 wrenn.gw=169.254.0.22 wrenn.dns=1.1.1.1 wrenn.hostname=sb-inittest\n"), 0o644)
	os.WriteFile(resolv, nil, 0o644)

	// eth0 is one end of a veth pair; /etc/resolv.conf is a file of the
	// test's, bind-mounted in the private mount namespace.
	script := "ip link add eth0 type veth peer name eth1 && mount --bind " + resolv + " /etc/resolv.conf && ENVD_DEBUG=1 exec " +
		MustBuild(t) + " init --cmdline " + cmdline + " -- serve --listen unix:" + sock
	cmd := exec.Command("unshare", "--pid", "--fork", "--kill-child", "--mount", "--uts", "--net", "--propagation", "private", "sh", "-c", script)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() || testing.Verbose() {
			t.Logf("envd's console:\n%s", logs.String())
		}
	})

	c := dialEnvd(t, sock)
	if got := mustExec(t, c, "hostname"); got != "sb-inittest\n" {
		t.Errorf("hostname %q", got)
	}
	if got := mustExec(t, c, "ip -4 -o addr show dev eth0"); !strings.Contains(got, "169.254.0.21/30") {
		t.Errorf("eth0: %q", got)
	}
	if got := mustExec(t, c, "ip route show default"); !strings.Contains(got, "default via 169.254.0.22 dev eth0") {
		t.Errorf("routes: %q", got)
	}
	if got := mustExec(t, c, "ip -o link show dev lo"); !strings.Contains(got, "UP") {
		t.Errorf("lo: %q", got)
	}
	if got := mustExec(t, c, "cat /etc/resolv.conf"); got != "nameserver 1.1.1.1\n" {
		t.Errorf("resolv.conf %q", got)
	}
	mounts := mustExec(t, c, "cat /proc/self/mounts")
	for _, m := range []string{"proc /proc", "sysfs /sys", "devpts /dev/pts", "tmpfs /dev/shm", "tmpfs /run", "tmpfs /tmp"} {
		if !strings.Contains(mounts, m+" ") {
			t.Errorf("no %s mount", m)
		}
	}
	if got := mustExec(t, c, "cat /proc/1/cmdline | tr '\\0' ' '"); !strings.Contains(got, " init ") {
		t.Errorf("PID 1 is %q, want envd init", got)
	}

	// Orphans are reaped: a grandchild whose parent is gone ends up with
	// PID 1 and must not stay a zombie.
	mustExec(t, c, "(sleep 0.2 &) ; true")
	zombies := func() string {
		return mustExec(t, c, `for s in /proc/[0-9]*/stat; do read -r l < $s 2>/dev/null && case "$l" in *") Z "*) echo "$l";; esac; done; true`)
	}
	deadline := time.Now().Add(5 * time.Second)
	for z := zombies(); z != ""; z = zombies() {
		if time.Now().After(deadline) {
			t.Fatalf("zombies left: %s", z)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The server dies; PID 1 starts another; a host reconnects.
	servePID := strings.TrimSpace(mustExec(t, c, "echo $PPID"))
	if _, err := strconv.Atoi(servePID); err != nil {
		t.Fatalf("PPID %q", servePID)
	}
	c.Exec(context.Background(), wrenn.ExecRequest{Cmd: "kill -9 " + servePID})
	c2 := dialEnvd(t, sock)
	if got := strings.TrimSpace(mustExec(t, c2, "echo $PPID")); got == servePID {
		t.Errorf("still served by pid %s", got)
	}

	// SIGTERM to PID 1 ends the server and the namespace.
	initPID := childOf(t, cmd.Process.Pid)
	if err := syscall.Kill(initPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		exited <- nil // for the cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("envd init did not shut down on SIGTERM")
	}
	if !strings.Contains(logs.String(), "envd serve exited") {
		t.Errorf("no log line for the server's death:\n%s", logs.String())
	}
}

// childOf returns the only child of pid.
func childOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		t.Fatalf("unshare has children %q", f)
	}
	child, _ := strconv.Atoi(f[0])
	return child
}
