package disk_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
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

// TestOverlayBounded: an overlay's virtual size is its base's, and
// however often the guest writes the whole disk, the overlay takes no
// more of the host than MaxOverlay says.
func TestOverlayBounded(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io is not installed")
	}
	const size = 64 << 20
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	if err := os.WriteFile(base, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(base, size); err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(dir, "top.qcow2")
	if err := disk.Overlay(context.Background(), base, "raw", top); err != nil {
		t.Fatal(err)
	}
	if got, err := disk.VirtualSize(top); err != nil || got != size {
		t.Fatalf("VirtualSize = %d, %v; want %d", got, err, size)
	}
	for _, pattern := range []string{"0xab", "0xcd"} {
		// Scattered 4 KiB writes first (each allocates a whole cluster),
		// then the whole disk, twice over.
		out, err := exec.Command("qemu-io", "-f", "qcow2",
			"-c", "write -P "+pattern+" 4k 4k", "-c", "write -P "+pattern+" 1m 4k",
			"-c", "write -P "+pattern+" 0 64m", top).CombinedOutput()
		if err != nil {
			t.Fatalf("qemu-io: %v %s", err, out)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(top, &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used < size || used > disk.MaxOverlay(size) {
		t.Fatalf("overlay of a fully written %d-byte disk takes %d bytes, want at most %d", size, used, disk.MaxOverlay(size))
	}
	if _, err := disk.VirtualSize(base); err == nil {
		t.Error("a raw image was read as qcow2")
	}
}
