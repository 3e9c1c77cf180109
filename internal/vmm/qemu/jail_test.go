package qemu

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wrennhq/wrenn/internal/vmm"
)

// The console log rotates at its limit, keeping one older file: never
// more than twice the limit on disk, and the latest output in the log.
func TestRotatingLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	l, err := openLog(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"0123456", "789abcdefghij", "klmnopqrstuvwxyz"} {
		if n, err := l.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("write %q: %d, %v", s, n, err)
		}
	}
	l.Close()
	cur, _ := os.ReadFile(path)
	old, _ := os.ReadFile(path + ".1")
	if string(old) != "klmnopqrst" || string(cur) != "uvwxyz" {
		t.Errorf("log %q, older %q", cur, old)
	}
	// A restarted agent continues the log where it was.
	l, err = openLog(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("ABCDEFG"))
	l.Close()
	cur, _ = os.ReadFile(path)
	old, _ = os.ReadFile(path + ".1")
	if string(old) != "uvwxyzABCD" || string(cur) != "EFG" {
		t.Errorf("continued log %q, older %q", cur, old)
	}
}

// The jail shows a VM its kernel and its disk's whole backing chain
// read-only, its top disk and memory writable, and the system dirs.
func TestJailSpec(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img is not installed")
	}
	dir := t.TempDir()
	base, mid, top := filepath.Join(dir, "base.raw"), filepath.Join(dir, "mid.qcow2"), filepath.Join(dir, "run", "top.qcow2")
	os.Mkdir(filepath.Dir(top), 0o700)
	os.WriteFile(base, make([]byte, 1<<20), 0o644)
	for _, c := range [][]string{
		{"create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, mid},
		{"create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "../mid.qcow2", top}, // relative
	} {
		if out, err := exec.Command("qemu-img", c...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, bytes.TrimSpace(out))
		}
	}
	d := &Driver{bin: "/usr/bin/qemu-system-x86_64", jailRoot: DefaultJailRoot, uids: &uids{base: DefaultUIDBase}}
	c := vmm.Config{Kernel: "/k/vmlinux", RootDisk: top, RootDiskFormat: "qcow2", MemoryFile: filepath.Join(dir, "run", "mem")}
	s, err := d.jailSpec(c, []string{d.bin}, 400007, AccelTCG, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/k/vmlinux", mid, base}; !slices.Equal(s.ReadOnly, want) {
		t.Errorf("read-only %q, want %q", s.ReadOnly, want)
	}
	if want := []string{top, c.MemoryFile}; !slices.Equal(s.Writable, want) {
		t.Errorf("writable %q, want %q", s.Writable, want)
	}
	if slices.Contains(s.Devices, "/dev/kvm") || !slices.Contains(s.System, "/usr") {
		t.Errorf("devices %q, system %q", s.Devices, s.System)
	}
	if s.UID != 400007 || s.GID != 400007 || !slices.Equal(s.Groups, []int{DefaultUIDBase}) {
		t.Errorf("uid %d gid %d groups %v", s.UID, s.GID, s.Groups)
	}
	s, _ = d.jailSpec(c, []string{d.bin}, 400007, AccelKVM, nil)
	if !slices.Contains(s.Devices, "/dev/kvm") {
		t.Errorf("no /dev/kvm under KVM: %q", s.Devices)
	}
}

func TestUIDs(t *testing.T) {
	u := &uids{base: 1000, count: 4, used: map[int]bool{}}
	u.hold(1002) // adopted
	u.hold(5000) // not ours: ignored
	var got []int
	for {
		id, err := u.take()
		if err != nil {
			break
		}
		got = append(got, id)
	}
	if !slices.Equal(got, []int{1001, 1003}) {
		t.Errorf("took %v", got)
	}
	u.release(1002)
	if id, err := u.take(); err != nil || id != 1002 {
		t.Errorf("after release: %d, %v", id, err)
	}
}
