package cgroup_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wrennhq/wrenn/internal/cgroup"
)

// fakeV1 lays out root as a v1 host mounts its controllers, one directory
// each; weight says whether blkio offers blkio.weight.
func fakeV1(t *testing.T, weight bool) string {
	t.Helper()
	root := t.TempDir()
	for _, c := range []string{"cpu", "memory", "pids", "blkio", "unified"} {
		mustWrite(t, filepath.Join(root, c, "cgroup.procs"), "")
	}
	mustWrite(t, filepath.Join(root, "unified", "cgroup.controllers"), "hugetlb\n") // hybrid: not v2
	if weight {
		mustWrite(t, filepath.Join(root, "blkio", "wrenn", "blkio.weight"), "500\n")
	}
	return root
}

// fakeV2 lays out root as a cgroup2 mount with the given controllers.
func fakeV2(t *testing.T, controllers string) string {
	t.Helper()
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "cgroup.controllers"), controllers+"\n")
	mustWrite(t, filepath.Join(root, "cgroup.procs"), "")
	mustWrite(t, filepath.Join(root, "wrenn", "io.weight"), "default 100\n")
	return root
}

func mustWrite(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var limits = cgroup.Limits{CPUs: 2, MemoryBytes: 768 << 20, Pids: 130, IOWeight: 100}

func TestV1(t *testing.T) {
	for _, weight := range []bool{true, false} {
		root := fakeV1(t, weight)
		h, err := cgroup.Detect(root, "wrenn")
		if err != nil {
			t.Fatal(err)
		}
		if h.V2() {
			t.Fatal("a hybrid host with controllers in v1 was taken for v2")
		}
		g, err := h.Create("sb-1", limits)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"cpu/wrenn/sb-1/cpu.cfs_period_us":        "100000",
			"cpu/wrenn/sb-1/cpu.cfs_quota_us":         "200000",
			"memory/wrenn/sb-1/memory.limit_in_bytes": strconv.Itoa(768 << 20),
			"pids/wrenn/sb-1/pids.max":                "130",
		}
		if weight {
			want["blkio/wrenn/sb-1/blkio.weight"] = "500"
		}
		for f, v := range want {
			if got := read(t, filepath.Join(root, f)); got != v {
				t.Errorf("%s = %q, want %q", f, got, v)
			}
		}
		if _, err := os.Stat(filepath.Join(root, "blkio/wrenn/sb-1/blkio.weight")); weight == (err != nil) {
			t.Errorf("blkio.weight written %v, offered %v", err == nil, weight)
		}
		wantProcs := []string{}
		for _, c := range []string{"cpu", "memory", "pids", "blkio"} {
			wantProcs = append(wantProcs, filepath.Join(root, c, "wrenn", "sb-1", "cgroup.procs"))
		}
		if got := g.Procs(); !slices.Equal(got, wantProcs) {
			t.Errorf("Procs = %q, want %q", got, wantProcs)
		}
		removeFake(t, g)
		for _, c := range []string{"cpu", "memory", "pids", "blkio"} {
			if _, err := os.Stat(filepath.Join(root, c, "wrenn", "sb-1")); !os.IsNotExist(err) {
				t.Errorf("%s group left: %v", c, err)
			}
		}
	}
}

func TestV2(t *testing.T) {
	root := fakeV2(t, "cpuset cpu io memory hugetlb pids rdma misc")
	h, err := cgroup.Detect(root, "wrenn")
	if err != nil {
		t.Fatal(err)
	}
	if !h.V2() {
		t.Fatal("v2 not detected")
	}
	// The fake subtree_control keeps the last write only.
	for _, d := range []string{root, filepath.Join(root, "wrenn")} {
		if got := read(t, filepath.Join(d, "cgroup.subtree_control")); got != "+io" {
			t.Errorf("%s/cgroup.subtree_control last got %q", d, got)
		}
	}
	g, err := h.Create("sb-1", limits)
	if err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{
		"cpu.max":    "200000 100000",
		"memory.max": strconv.Itoa(768 << 20),
		"pids.max":   "130",
		"io.weight":  "default 100",
	} {
		if got := read(t, filepath.Join(root, "wrenn", "sb-1", f)); got != v {
			t.Errorf("%s = %q, want %q", f, got, v)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "wrenn", "sb-1", "io.bfq.weight")); err == nil {
		t.Error("io.bfq.weight written where the host does not offer it")
	}
	if got := g.Procs(); !slices.Equal(got, []string{filepath.Join(root, "wrenn", "sb-1", "cgroup.procs")}) {
		t.Errorf("Procs = %q", got)
	}
}

func TestDetectRefuses(t *testing.T) {
	if _, err := cgroup.Detect(fakeV2(t, "cpu io hugetlb pids"), "wrenn"); err == nil {
		t.Error("v2 without the memory controller accepted")
	}
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "cpu", "cgroup.procs"), "")
	if _, err := cgroup.Detect(root, "wrenn"); err == nil {
		t.Error("v1 with only the cpu controller accepted")
	}
	for _, parent := range []string{"", "/abs", "../up", "a/../b"} {
		if _, err := cgroup.Detect(fakeV2(t, "cpu memory pids"), parent); err == nil {
			t.Errorf("parent %q accepted", parent)
		}
	}
	h, err := cgroup.Detect(fakeV2(t, "cpu memory pids"), "wrenn")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "..", "a/b", "."} {
		if _, err := h.Create(name, limits); err == nil {
			t.Errorf("group %q accepted", name)
		}
	}
}

// removeFake empties the fake group directories of the control files a
// real cgroupfs would drop by itself, then removes the group.
func removeFake(t *testing.T, g *cgroup.Group) {
	t.Helper()
	for _, d := range g.Dirs() {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			os.Remove(filepath.Join(d, e.Name()))
		}
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := g.Remove(); err != nil {
		t.Errorf("removing a removed group: %v", err)
	}
}

func TestSweep(t *testing.T) {
	root := fakeV1(t, false)
	h, err := cgroup.Detect(root, "wrenn")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"live", "busy", "left"} {
		if err := os.MkdirAll(filepath.Join(root, "memory", "wrenn", n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(t, filepath.Join(root, "pids", "wrenn", "busy", "cgroup.procs"), "1234\n")
	removed, err := h.Sweep(func(n string) bool { return n == "live" })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{"left"}) {
		t.Errorf("swept %q, want [left]", removed)
	}
	names, _ := h.Names()
	slices.Sort(names)
	if !slices.Equal(names, []string{"busy", "live"}) {
		t.Errorf("left %q", names)
	}
}

func TestGroupOf(t *testing.T) {
	procs := t.TempDir()
	mustWrite(t, filepath.Join(procs, "10", "cgroup"), "9:name=systemd:/\n8:pids:/wrenn/sb-a\n4:memory:/wrenn/sb-a\n1:cpu:/wrenn/sb-a\n0::/\n")
	mustWrite(t, filepath.Join(procs, "11", "cgroup"), "4:memory:/process_api/x\n0::/\n")
	mustWrite(t, filepath.Join(procs, "12", "cgroup"), "0::/wrenn/sb-b\n")
	mustWrite(t, filepath.Join(procs, "13", "cgroup"), "0::/wrenn/sb-b/deeper\n")
	v1, err := cgroup.Detect(fakeV1(t, false), "wrenn")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := cgroup.Detect(fakeV2(t, "cpu memory pids"), "wrenn")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		h    *cgroup.Host
		pid  int
		want string
	}{{v1, 10, "sb-a"}, {v1, 11, ""}, {v2, 12, "sb-b"}, {v2, 10, ""}, {v2, 13, ""}, {v1, 12, ""}} {
		got, err := c.h.GroupOf(procs, c.pid)
		if err != nil || got != c.want {
			t.Errorf("v2 %v pid %d: %q, %v; want %q", c.h.V2(), c.pid, got, err, c.want)
		}
	}
}

// TestReal uses the host's own cgroups: a process moved into a group is
// found there, the limits read back, and the group goes once it exits.
func TestReal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	parent := "wrenn-test-" + strconv.Itoa(os.Getpid())
	h, err := cgroup.Detect(cgroup.DefaultRoot, parent)
	if err != nil {
		t.Skipf("this host's cgroups: %v", err)
	}
	t.Cleanup(func() {
		for _, c := range []string{"", "cpu", "memory", "pids", "blkio"} {
			os.Remove(filepath.Join(cgroup.DefaultRoot, c, parent))
		}
	})
	g, err := h.Create("sb-real", limits)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, p := range g.Procs() {
		if err := os.WriteFile(p, []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := h.GroupOf("/proc", cmd.Process.Pid); err != nil || got != "sb-real" {
		t.Errorf("GroupOf = %q, %v", got, err)
	}
	memFile, cpuFile := "memory.max", "cpu.max"
	if !h.V2() {
		memFile, cpuFile = "memory.limit_in_bytes", "cpu.cfs_quota_us"
	}
	var all []string
	for _, d := range g.Dirs() {
		for _, f := range []string{memFile, cpuFile, "pids.max"} {
			if b, err := os.ReadFile(filepath.Join(d, f)); err == nil {
				all = append(all, f+"="+strings.TrimSpace(string(b)))
			}
		}
	}
	for _, want := range []string{memFile + "=" + strconv.Itoa(768<<20), "pids.max=130"} {
		if !slices.Contains(all, want) {
			t.Errorf("no %s in %q", want, all)
		}
	}
	if removed, _ := h.Sweep(func(string) bool { return false }); len(removed) != 0 {
		t.Errorf("swept a busy group: %q", removed)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if names, err := h.Names(); err != nil || len(names) != 0 {
		t.Errorf("left %q, %v", names, err)
	}
}
