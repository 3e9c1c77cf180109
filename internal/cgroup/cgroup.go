// Package cgroup puts each sandbox's VMM in a control group of its own
// with its CPU, memory, process and I/O limits, on whichever cgroup
// layout the host has: the unified v2 hierarchy, or the v1 controllers
// mounted one per directory (cpu, memory, pids, blkio). It only creates,
// limits, finds and removes groups; the VMM joins its group itself before
// it runs (internal/jail). The VMM drivers are its users.
//
// Groups live at <parent>/<name> in each hierarchy, parent "wrenn" by
// default, as Docker's cgroupfs driver keeps /docker/<id>.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultRoot is where the host mounts its cgroup file systems.
const DefaultRoot = "/sys/fs/cgroup"

// cfsPeriod is the CPU accounting period, in microseconds: the kernel's
// default, and a quota is whole CPUs of it.
const cfsPeriod = 100000

// Limits are what one group may take.
type Limits struct {
	CPUs        int   // CPU time, in whole CPUs; 0 for no cap
	MemoryBytes int64 // memory, page cache of files it touches included; 0 for no cap
	Pids        int   // processes and threads; 0 for no cap
	// IOWeight is its share of disk time against other groups, on v2's
	// scale (1–10000, 100 the default); 0 leaves the default. Hosts whose
	// I/O scheduler has no weights (v1 without BFQ) ignore it.
	IOWeight int
}

// Host is the host's cgroup layout.
type Host struct {
	v2     bool
	root   string            // where the hierarchies are mounted
	dirs   map[string]string // controller → its parent directory (v2: one directory for all)
	parent string
}

// Controllers a v1 host must have (blkio is welcome, not required), and
// the v2 ones.
var (
	v1Required = []string{"cpu", "memory", "pids"}
	v2Required = []string{"cpu", "memory", "pids"}
)

// Detect finds the layout under root (DefaultRoot on a real host) and
// creates the parent directory groups go in: v2 if root is a cgroup2
// mount (it has cgroup.controllers), else the v1 controllers mounted in
// root's subdirectories. A hybrid host whose v2 hierarchy lacks the
// controllers (systemd's "unified" with hugetlb alone) counts as v1.
func Detect(root, parent string) (*Host, error) {
	if err := checkName(parent); err != nil {
		return nil, fmt.Errorf("cgroup parent: %w", err)
	}
	h := &Host{root: root, parent: parent, dirs: map[string]string{}}
	if b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers")); err == nil {
		h.v2 = true
		have := strings.Fields(string(b))
		for _, c := range v2Required {
			if !contains(have, c) {
				return nil, fmt.Errorf("cgroup v2 at %s lacks the %s controller", root, c)
			}
		}
		dir := filepath.Join(root, parent)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cgroup parent: %w", err)
		}
		// Controllers reach a group only if every ancestor hands them down.
		for _, d := range []string{root, dir} {
			for _, c := range append(v2Required, "io") {
				err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+"+c), 0o644)
				if err != nil && contains(v2Required, c) {
					return nil, fmt.Errorf("enable the %s controller in %s: %w", c, d, err)
				}
			}
		}
		for _, c := range append(v2Required, "io") {
			h.dirs[c] = dir
		}
		return h, nil
	}
	for _, c := range append(v1Required, "blkio") {
		base := filepath.Join(root, c)
		if _, err := os.Stat(filepath.Join(base, "cgroup.procs")); err != nil {
			if contains(v1Required, c) {
				return nil, fmt.Errorf("no cgroup v2 at %s and no v1 %s controller: %w", root, c, err)
			}
			continue
		}
		dir := filepath.Join(base, parent)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cgroup parent: %w", err)
		}
		h.dirs[c] = dir
	}
	return h, nil
}

// V2 reports whether the host has the unified hierarchy.
func (h *Host) V2() bool { return h.v2 }

// Group is one sandbox's control group, a directory in each hierarchy.
type Group struct {
	Name string
	dirs []string
}

// Dirs are the group's directories, one per hierarchy.
func (g *Group) Dirs() []string { return g.dirs }

// Procs are the files a process writes its PID to to join the group.
func (g *Group) Procs() []string {
	out := make([]string, len(g.dirs))
	for i, d := range g.dirs {
		out[i] = filepath.Join(d, "cgroup.procs")
	}
	return out
}

// Open is the group name, which may or may not exist.
func (h *Host) Open(name string) *Group {
	g := &Group{Name: name}
	seen := map[string]bool{}
	for _, c := range []string{"cpu", "memory", "pids", "blkio", "io"} {
		d, ok := h.dirs[c]
		if !ok || seen[d] {
			continue
		}
		seen[d] = true
		g.dirs = append(g.dirs, filepath.Join(d, name))
	}
	return g
}

// Create makes group name with limits l; a group left by an earlier
// process under that name is reused if empty. On failure nothing is left.
func (h *Host) Create(name string, l Limits) (_ *Group, err error) {
	if err := checkGroup(name); err != nil {
		return nil, err
	}
	g := h.Open(name)
	defer func() {
		if err != nil {
			err = errors.Join(err, g.Remove())
		}
	}()
	for _, d := range g.dirs {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return g, fmt.Errorf("create cgroup: %w", err)
		}
	}
	for _, w := range h.limitFiles(l) {
		dir, ok := h.dirs[w.controller]
		if !ok {
			continue
		}
		if w.optional {
			// Present in the parent only where the kernel offers it.
			if _, err := os.Stat(filepath.Join(dir, w.file)); err != nil {
				continue
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name, w.file), []byte(w.value), 0o644); err != nil {
			return g, fmt.Errorf("cgroup %s: set %s: %w", name, w.file, err)
		}
	}
	return g, nil
}

type limitFile struct {
	controller, file, value string
	optional                bool
}

// limitFiles are the writes that set l, in order (the v1 period before
// the quota it is a share of).
func (h *Host) limitFiles(l Limits) []limitFile {
	var out []limitFile
	if h.v2 {
		if l.CPUs > 0 {
			out = append(out, limitFile{"cpu", "cpu.max", fmt.Sprintf("%d %d", l.CPUs*cfsPeriod, cfsPeriod), false})
		}
		if l.MemoryBytes > 0 {
			out = append(out, limitFile{"memory", "memory.max", strconv.FormatInt(l.MemoryBytes, 10), false})
		}
		if l.Pids > 0 {
			out = append(out, limitFile{"pids", "pids.max", strconv.Itoa(l.Pids), false})
		}
		if l.IOWeight > 0 {
			w := strconv.Itoa(min(max(l.IOWeight, 1), 10000))
			out = append(out, limitFile{"io", "io.weight", "default " + w, true},
				limitFile{"io", "io.bfq.weight", strconv.Itoa(min(max(l.IOWeight, 1), 1000)), true})
		}
		return out
	}
	if l.CPUs > 0 {
		out = append(out, limitFile{"cpu", "cpu.cfs_period_us", strconv.Itoa(cfsPeriod), false},
			limitFile{"cpu", "cpu.cfs_quota_us", strconv.Itoa(l.CPUs * cfsPeriod), false})
	}
	if l.MemoryBytes > 0 {
		out = append(out, limitFile{"memory", "memory.limit_in_bytes", strconv.FormatInt(l.MemoryBytes, 10), false})
	}
	if l.Pids > 0 {
		out = append(out, limitFile{"pids", "pids.max", strconv.Itoa(l.Pids), false})
	}
	if l.IOWeight > 0 {
		// v1's scale is 10–1000 with 500 the default: five times v2's.
		w := strconv.Itoa(min(max(l.IOWeight*5, 10), 1000))
		out = append(out, limitFile{"blkio", "blkio.weight", w, true}, limitFile{"blkio", "blkio.bfq.weight", w, true})
	}
	return out
}

// removeWait bounds how long Remove waits for a group's last process to
// leave it: a killed process takes a moment to exit.
const removeWait = 2 * time.Second

// Remove removes the group's directories. A group that does not exist is
// not an error; one a process is still in is, once removeWait has passed.
func (g *Group) Remove() error {
	var errs []error
	for _, d := range g.dirs {
		deadline := time.Now().Add(removeWait)
		for {
			err := os.Remove(d)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("remove cgroup: %w", err))
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// Names lists the groups under the parent.
func (h *Host) Names() ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, d := range h.dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			return nil, fmt.Errorf("list cgroups: %w", err)
		}
		for _, e := range ents {
			if e.IsDir() && !seen[e.Name()] {
				seen[e.Name()] = true
				out = append(out, e.Name())
			}
		}
	}
	return out, nil
}

// Sweep removes the groups under the parent that keep does not claim and
// no process is in: what a crash left. A group still in use stays.
func (h *Host) Sweep(keep func(name string) bool) (removed []string, err error) {
	names, err := h.Names()
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if keep(n) {
			continue
		}
		g := h.Open(n)
		if busy(g) {
			continue
		}
		if rerr := g.Remove(); rerr != nil {
			err = errors.Join(err, rerr)
			continue
		}
		removed = append(removed, n)
	}
	return removed, err
}

// busy reports whether any process is in g.
func busy(g *Group) bool {
	for _, p := range g.Procs() {
		if b, err := os.ReadFile(p); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return true
		}
	}
	return false
}

// GroupOf returns the name of the group under the parent that process pid
// is in, or "" if it is in none; procRoot is /proc on a real host.
func (h *Host) GroupOf(procRoot string, pid int) (string, error) {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if h.v2 != (parts[0] == "0" && parts[1] == "") || (!h.v2 && !contains(strings.Split(parts[1], ","), "memory")) {
			continue
		}
		rest, ok := strings.CutPrefix(parts[2], "/"+h.parent+"/")
		if !ok || checkGroup(rest) != nil {
			return "", nil
		}
		return rest, nil
	}
	return "", sc.Err()
}

// checkName accepts a group name that is one path component (or, for the
// parent, several), nothing that climbs out.
func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") {
		return fmt.Errorf("cgroup name %q", name)
	}
	for _, p := range strings.Split(name, "/") {
		if p == "" || p == "." || p == ".." {
			return fmt.Errorf("cgroup name %q", name)
		}
	}
	return nil
}

// checkGroup accepts a group name: one path component.
func checkGroup(name string) error {
	if strings.Contains(name, "/") {
		return fmt.Errorf("cgroup name %q", name)
	}
	return checkName(name)
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }
