package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestVMMJail reads each sandbox's QEMU from /proc: an unprivileged user,
// no capabilities, no_new_privs, seccomp filtering, namespaces of its own,
// and a control group of its own with the sandbox's limits, gone with the
// sandbox. A sandbox restored from the warm snapshot and one booted at
// another size both count; so does the bounded console log.
func TestVMMJail(t *testing.T) {
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir)
	key := s.account("jail@example.com")
	type sized struct {
		body         map[string]any
		vcpus, memMB int
	}
	for _, c := range []sized{{map[string]any{}, 1, 512}, {map[string]any{"memory_mb": 384, "vcpus": 2}, 2, 384}} {
		sb := s.create(key, c.body)
		dir := runDirOf(t, dataDir, sb.ID)
		pids := qemuPIDs(dir)
		if len(pids) != 1 {
			t.Fatalf("sandbox %s: %d QEMU processes", sb.ID, len(pids))
		}
		pid := pids[0]
		checkJailed(t, pid)
		groups := cgroupDirs(t, pid)
		checkLimits(t, groups, c.vcpus, c.memMB)
		t.Logf("sandbox %s: QEMU %d, uid %s, control groups %q", sb.ID, pid, procStatus(t, pid)["Uid"], groups)
		if r := s.exec(key, sb.ID, "echo hi"); r.Stdout != "hi\n" {
			t.Errorf("exec in the jailed VM: %+v", r)
		}
		s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
		eventually(t, 10*time.Second, func() string {
			for _, g := range groups {
				if _, err := os.Stat(g); err == nil {
					return "the sandbox's control group " + g + " outlives it"
				}
			}
			return ""
		})
	}
}

// checkJailed checks what /proc says of process pid's privileges.
func checkJailed(t *testing.T, pid int) {
	t.Helper()
	st := procStatus(t, pid)
	uid := strings.Fields(st["Uid"])
	if len(uid) != 4 {
		t.Fatalf("Uid line %q", st["Uid"])
	}
	for _, u := range uid {
		if u == "0" || u != uid[0] {
			t.Errorf("QEMU %d runs as uids %q", pid, uid)
		}
	}
	if g := strings.Fields(st["Gid"]); len(g) == 0 || g[0] == "0" {
		t.Errorf("QEMU %d runs as gids %q", pid, g)
	}
	for k, want := range map[string]string{
		"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
		"CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
		"NoNewPrivs": "1", "Seccomp": "2",
	} {
		if st[k] != want {
			t.Errorf("QEMU %d: %s %q, want %q", pid, k, st[k], want)
		}
	}
	for _, ns := range []string{"mnt", "pid", "net"} {
		mine, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err != nil {
			t.Fatal(err)
		}
		if theirs == mine {
			t.Errorf("QEMU %d shares the %s namespace %s", pid, ns, mine)
		}
	}
	// Its root is its own: the host's /etc is not there.
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/root/etc/passwd", pid)); err == nil {
		t.Errorf("QEMU %d sees the host's /etc/passwd", pid)
	}
}

// procStatus reads /proc/<pid>/status into a map.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// cgroupDirs are the directories of the control groups under wrenn/ that
// process pid is in, one per hierarchy (v1) or one (v2).
func cgroupDirs(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[2], "/wrenn/") {
			continue
		}
		if parts[0] == "0" {
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup", parts[2]))
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup", c, parts[2]))
		}
	}
	if len(dirs) == 0 {
		t.Fatalf("QEMU %d is in no wrenn control group:\n%s", pid, b)
	}
	return dirs
}

// checkLimits reads the limits of a sandbox of vcpus and memMB back from
// its control group's files.
func checkLimits(t *testing.T, dirs []string, vcpus, memMB int) {
	t.Helper()
	got := map[string]string{}
	for _, d := range dirs {
		for _, f := range []string{"cpu.max", "cpu.cfs_quota_us", "memory.max", "memory.limit_in_bytes", "pids.max"} {
			if b, err := os.ReadFile(filepath.Join(d, f)); err == nil {
				got[f] = strings.TrimSpace(string(b))
			}
		}
	}
	mem := strconv.Itoa((memMB + 256) << 20) // guests run under TCG here
	want := map[string]string{"pids.max": strconv.Itoa(128 + vcpus)}
	if _, v2 := got["cpu.max"]; v2 {
		want["cpu.max"] = fmt.Sprintf("%d 100000", vcpus*100000)
		want["memory.max"] = mem
	} else {
		want["cpu.cfs_quota_us"] = strconv.Itoa(vcpus * 100000)
		want["memory.limit_in_bytes"] = mem
	}
	for f, w := range want {
		if got[f] != w {
			t.Errorf("%s = %q, want %q (groups %q)", f, got[f], w, dirs)
		}
	}
}

// TestConsoleLogBounded: a guest that floods its serial console fills at
// most two 1 MiB log files, and the log keeps the latest output.
func TestConsoleLogBounded(t *testing.T) {
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir, "WRENN_WARM_POOL=0")
	key := s.account("console@example.com")
	sb := s.create(key, map[string]any{})
	dir := runDirOf(t, dataDir, sb.ID)
	// 2.5 MB of x, then a marker, through the emulated UART.
	r := s.exec(key, sb.ID, "sh -c 'head -c 2500000 /dev/zero | tr \"\\\\0\" x > /dev/ttyS0; echo console-end-marker > /dev/ttyS0'")
	if r.ExitCode != 0 {
		t.Fatalf("flood: %+v", r)
	}
	eventually(t, 10*time.Second, func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "console.log"))
		if !strings.Contains(string(b), "console-end-marker") {
			return "the marker is not in console.log yet"
		}
		return ""
	})
	for _, f := range []string{"console.log", "console.log.1"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 1<<20 {
			t.Errorf("%s is %d bytes, over 1 MiB", f, fi.Size())
		}
	}
	s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
}
