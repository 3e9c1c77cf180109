package disk_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/wrennhq/wrenn/internal/disk"
)

func TestBacking(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img is not installed")
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	if err := os.WriteFile(base, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(dir, "top.qcow2")
	if err := disk.Overlay(context.Background(), base, "raw", top); err != nil {
		t.Fatal(err)
	}
	if got, err := disk.Backing(top); err != nil || got != base {
		t.Errorf("Backing(overlay) = %q, %v; want %q", got, err, base)
	}
	plain := filepath.Join(dir, "plain.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", plain, "1M").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if got, err := disk.Backing(plain); err != nil || got != "" {
		t.Errorf("Backing(no backing) = %q, %v; want none", got, err)
	}
	if _, err := disk.Backing(base); err == nil {
		t.Error("a raw image was read as qcow2")
	}
}
