package agent

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/layout"
)

// writeQcow2Header makes path the header of a qcow2 image of virtual size
// size: enough for disk.VirtualSize.
func writeQcow2Header(t *testing.T, path string, size int64) {
	t.Helper()
	h := make([]byte, 32)
	binary.BigEndian.PutUint32(h[0:4], 0x514649fb)
	binary.BigEndian.PutUint64(h[24:32], uint64(size))
	if err := os.WriteFile(path, h, 0o600); err != nil {
		t.Fatal(err)
	}
}

// grow writes mib MiB of real data to path, so that its blocks count.
func grow(t *testing.T, path string, mib int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, wrenn.MiB)
	for i := range buf {
		buf[i] = 0xa5
	}
	for range mib {
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestDiskAccounting: admission charges each sandbox what it may still
// write — its worst case less what its files take, which the host's free
// disk no longer holds, so nothing counts twice — charges a paused
// sandbox nothing more, and checks a resume against what its files may
// grow by; links to its template's files are the template's.
func TestDiskAccounting(t *testing.T) {
	free := int64(1100) // 100 MiB above the reserve
	m := New(Config{Layout: layout.New(t.TempDir()), Logger: discardLog(), Admission: AdmissionConfig{
		DiskReserveMB: 1000, Host: fixedHost(&free),
	}})
	t.Cleanup(m.Close)
	// A runs (adopted: its worst case comes from its disk): a 16 MiB root
	// disk, at most 18 MiB as an overlay, 8 MiB of RAM and 8 of slack.
	a := addRunning(t, m, &machine{})
	a.rec = record{ID: a.id, VCPUs: 1, MemoryMB: 8, FromSnapshot: true}
	writeQcow2Header(t, a.dir.RootDisk(), 16<<20)
	grow(t, a.dir.TemplateMemory(), 5) // the template's, not A's
	const worst = 18 + 8 + 8
	if got := a.diskCharge(); got != worst {
		t.Fatalf("A is charged %d MiB, want its worst case %d", got, worst)
	}
	n := need{VCPUs: 1, MemoryMB: 8, DiskMB: worst}
	if _, err := m.reserveWithin(t.Context(), wrenn.NewID(wrenn.PrefixSandbox), n, nil); err != nil {
		t.Fatalf("a second sandbox within the free disk: %v", err)
	}
	refused := func(want string) {
		t.Helper()
		_, err := m.reserveWithin(t.Context(), wrenn.NewID(wrenn.PrefixSandbox), n, nil)
		wantHostFull(t, err, want)
	}
	refused("host is full: the sandbox may need 34 MiB of disk, 32 MiB are free above the host's 1000 MiB reserve and what its sandboxes may still write")

	// A's RAM file takes 10 MiB: the host has 10 MiB less free, and A may
	// write 10 MiB less. The room is the same.
	grow(t, a.dir.Memory(), 10)
	free -= 10
	if got := a.diskCharge(); got != worst-10 {
		t.Fatalf("A is charged %d MiB once its files take 10, want %d", got, worst-10)
	}
	refused("host is full: the sandbox may need 34 MiB of disk, 32 MiB are free above the host's 1000 MiB reserve and what its sandboxes may still write")

	// Paused, A cannot grow: a third sandbox fits.
	a.rec.Paused = true
	a.mach, a.lc = nil, lcPaused
	if _, err := m.reserveWithin(t.Context(), wrenn.NewID(wrenn.PrefixSandbox), n, nil); err != nil {
		t.Fatalf("a sandbox beside a paused one: %v", err)
	}
	// A's resume needs what its files may grow by, 24 MiB; 22 are left.
	a.op.Lock()
	_, err := m.beginResume(a)
	a.op.Unlock()
	wantHostFull(t, err, "host is full: the sandbox may need 24 MiB of disk, 22 MiB are free above the host's 1000 MiB reserve and what its sandboxes may still write")
	if a.lifecycle() != lcPaused {
		t.Fatalf("a refused resume left the sandbox %s", a.lifecycle())
	}
	// Overcommitted twice over, it fits.
	m.admit.cfg.DiskOvercommit = 2
	a.op.Lock()
	_, err = m.beginResume(a)
	a.op.Unlock()
	if err != nil {
		t.Fatalf("resume with the disk overcommitted: %v", err)
	}
}

// TestWorstDisk: a sandbox's worst case is its root disk as a full
// overlay, its RAM and the slack for its other files.
func TestWorstDisk(t *testing.T) {
	// 2 GiB: 2048 MiB of blocks, 0.5 of tables, 1 of header, rounded up.
	if got, want := worstDiskMB(2048<<20, 512), int64(2048+1+1+512+runDirSlackMB); got != want {
		t.Fatalf("worstDiskMB(2 GiB, 512) = %d, want %d", got, want)
	}
}
