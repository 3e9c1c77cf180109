package jail_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/jail"
)

func TestMain(m *testing.M) {
	jail.Main()
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("jailing needs root")
	}
}

// spec jails script, run by sh, with ro and rw shown.
func spec(t *testing.T, script string, ro, rw string) jail.Spec {
	return jail.Spec{
		Argv: []string{"/bin/sh", "-c", script}, UID: 400999, GID: 400999,
		Root: filepath.Join(t.TempDir(), "root"), System: jail.SystemDirs,
		ReadOnly: []string{ro}, Writable: []string{rw}, Devices: []string{"/dev/null"},
	}
}

// TestView: the jailed program sees the system directories, its files
// (one read-only, one writable) and nothing else of the host.
func TestView(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	ro, rw := filepath.Join(dir, "ro"), filepath.Join(dir, "rw")
	os.WriteFile(ro, []byte("ro\n"), 0o644)
	os.WriteFile(rw, []byte(""), 0o600)
	os.Chown(rw, 400999, 400999)
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("secret\n"), 0o644)
	script := `cat ` + ro + `; echo written > ` + rw + `; echo x > ` + ro + ` 2>/dev/null && echo ro-writable;
		cat ` + secret + ` 2>/dev/null && echo secret-visible; ls /; id -u; ls /proc 2>/dev/null | head -1; echo end`
	cmd, err := jail.Command(spec(t, script, ro, rw))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	got := out.String()
	for _, bad := range []string{"ro-writable", "secret-visible", "var\n", "root\n", "home\n", "proc\n"} {
		if strings.Contains(got, bad) {
			t.Errorf("jail shows %q:\n%s", bad, got)
		}
	}
	for _, want := range []string{"ro\n", "usr\n", "dev\n", "400999\n", "end\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in jail output:\n%s", want, got)
		}
	}
	if b, _ := os.ReadFile(rw); string(b) != "written\n" {
		t.Errorf("writable file holds %q", b)
	}
}

// TestPrivileges: the jailed program runs with no capabilities at all,
// no_new_privs, its own user and its own mount namespace.
func TestPrivileges(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, nil, 0o644)
	cmd, err := jail.Command(spec(t, "exec sleep 30", f, "/dev/zero"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := strconv.Itoa(cmd.Process.Pid)
	var status string
	for range 200 { // until the jailer has exec'd sleep
		b, _ := os.ReadFile("/proc/" + pid + "/status")
		if status = string(b); strings.Contains(status, "Name:\tsleep") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range []string{"Name:\tsleep", "Uid:\t400999\t400999\t400999\t400999", "Gid:\t400999\t400999\t400999\t400999",
		"CapInh:\t0000000000000000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
		"CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !strings.Contains(status, want) {
			t.Errorf("no %q in status:\n%s\n%s", want, status, out.String())
		}
	}
	for _, l := range strings.Split(status, "\n") {
		if g, ok := strings.CutPrefix(l, "Groups:"); ok && strings.TrimSpace(g) != "" {
			t.Errorf("supplementary groups %q", g)
		}
	}
	mine, _ := os.Readlink("/proc/self/ns/mnt")
	theirs, _ := os.Readlink("/proc/" + pid + "/ns/mnt")
	if theirs == "" || theirs == mine {
		t.Errorf("mount namespace %q, the test's %q", theirs, mine)
	}
}

func TestCommandRefusesRoot(t *testing.T) {
	for _, s := range []jail.Spec{
		{Argv: []string{"/bin/true"}, UID: 0, GID: 1, Root: "/r"},
		{Argv: []string{"/bin/true"}, UID: 1, GID: 0, Root: "/r"},
		{Argv: []string{"true"}, UID: 1, GID: 1, Root: "/r"},
		{Argv: []string{"/bin/true"}, UID: 1, GID: 1, Root: "r"},
	} {
		if _, err := jail.Command(s); err == nil {
			t.Errorf("%+v was accepted", s)
		}
	}
}
