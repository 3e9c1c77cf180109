package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/disk"
	"github.com/wrennhq/wrenn/internal/layout"
)

const travelID = "sb-abcdefgh234567ab"

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestStoreIDOnce(t *testing.T) {
	dir := layout.Shared(t.TempDir())
	a, err := openShared(dir, "host-a", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	b, err := openShared(dir, "host-b", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if a.id == "" || a.id != b.id || !strings.HasPrefix(a.id, "store-") {
		t.Fatalf("store ids %q and %q, want one and the same", a.id, b.id)
	}
	if a.owner == b.owner {
		t.Fatalf("two hosts share the owner tag %q", a.owner)
	}
	if left, _ := filepath.Glob(dir.StoreID() + ".tmp-*"); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// TestSparseSum: the hash is of the content: the same bytes hash the same
// whatever the file's name, other bytes or another length do not.
func TestSparseSum(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int64, at int64, data string) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte(data), at); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return p
	}
	a := write("a", 64<<20, 32<<20, "hello")
	b := write("b", 64<<20, 32<<20, "hello")
	c := write("c", 64<<20, 32<<20, "hellp")
	d := write("d", 65<<20, 32<<20, "hello")
	e := write("e", 64<<20, 16<<20, "hello")
	sum := func(p string) string {
		s, err := sparseSum(p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if sum(a) != sum(b) {
		t.Error("the same content hashes differently")
	}
	for _, p := range []string{c, d, e} {
		if sum(p) == sum(a) {
			t.Errorf("%s hashes as a does", filepath.Base(p))
		}
	}
}

// travelFixture is a host's run directory of a sandbox restored from a
// local template (a warm snapshot, say): a raw base in the host's images,
// a template disk over it linked into the run dir, the sandbox's root disk
// over that by absolute path, memory, device state, metrics and record.
type travelFixture struct {
	l        layout.Layout
	base     string
	tmplDisk string // the local template's disk, which must never change
	kernel   string
}

func newTravelFixture(t *testing.T, root string) travelFixture {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img is not installed")
	}
	f := travelFixture{l: layout.New(filepath.Join(root, "data"))}
	images := filepath.Join(root, "images")
	must(t, os.MkdirAll(images, 0o755))
	f.base = filepath.Join(images, "base.ext4")
	must(t, os.WriteFile(f.base, bytes.Repeat([]byte("b"), 1<<20), 0o644))
	f.kernel = filepath.Join(images, "vmlinux")
	must(t, os.WriteFile(f.kernel, []byte("kernel"), 0o644))
	f.tmplDisk = filepath.Join(images, "disk.qcow2")
	must(t, disk.Overlay(context.Background(), f.base, "raw", f.tmplDisk))
	dir := f.l.Sandbox(travelID)
	must(t, os.MkdirAll(dir.Path(), 0o700))
	must(t, os.Link(f.tmplDisk, dir.TemplateDisk()))
	must(t, disk.Overlay(context.Background(), dir.TemplateDisk(), "qcow2", dir.RootDisk()))
	must(t, os.WriteFile(dir.Memory(), []byte("memory"), 0o600))
	must(t, os.WriteFile(dir.VMState(), []byte("vmstate"), 0o600))
	must(t, os.WriteFile(dir.Metrics(), []byte("{}"), 0o600))
	must(t, writeRecord(dir, f.rec()))
	return f
}

func (f travelFixture) rec() record {
	return record{ID: travelID, Kernel: f.kernel, Paused: true, OwnMemory: true, FromSnapshot: true, VCPUs: 1, MemoryMB: 256}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// checkChain checks that qemu-img can open the whole chain of img.
func checkChain(t *testing.T, img string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", "info", "--backing-chain", img).CombinedOutput(); err != nil {
		t.Fatalf("the chain of %s does not open: %v\n%s", img, err, out)
	}
}

// TestTravel moves a paused sandbox from one host's run directory into
// the store and from there into another host's, with the store on the
// data dirs' file system (renames, links) and on another (copies).
func TestTravel(t *testing.T) {
	for _, c := range []struct{ name, store string }{
		{"same file system", ""},
		{"another file system", "/dev/shm"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			storeRoot := filepath.Join(root, "shared")
			if c.store != "" {
				if _, err := os.Stat(c.store); err != nil {
					t.Skip(c.store, " is missing")
				}
				d, err := os.MkdirTemp(c.store, "wrenn-shared-test")
				must(t, err)
				t.Cleanup(func() { os.RemoveAll(d) })
				storeRoot = d
			}
			f := newTravelFixture(t, root)
			ctx := context.Background()
			a, err := openShared(layout.Shared(storeRoot), "host-a", quietLog())
			must(t, err)
			dir := f.l.Sandbox(travelID)
			must(t, a.exportPaused(ctx, dir, f.rec()))

			if _, err := os.Stat(dir.Path()); !os.IsNotExist(err) {
				t.Fatalf("the run dir is still there: %v", err)
			}
			in := a.dir.PausedSandbox(travelID)
			if b, _ := disk.Backing(in.RootDisk()); b != "template.qcow2" {
				t.Errorf("the stored root disk is over %q, want its template disk by a relative path", b)
			}
			tb, _ := disk.Backing(in.TemplateDisk())
			if !a.holds(tb) || !strings.HasPrefix(tb, a.dir.Bases()+"/") || !strings.HasSuffix(tb, ".ext4") {
				t.Errorf("the stored template disk is over %q, want a base in the store", tb)
			}
			if b, _ := disk.Backing(f.tmplDisk); b != f.base {
				t.Errorf("the local template's disk was changed: over %q", b)
			}
			checkChain(t, in.RootDisk())
			rec, err := readRecord(in)
			must(t, err)
			if !a.holds(rec.Kernel) {
				t.Errorf("the stored record boots kernel %q, not the store's", rec.Kernel)
			}
			for _, p := range []string{in.Memory(), in.VMState(), in.Metrics()} {
				if _, err := os.Stat(p); err != nil {
					t.Error(err)
				}
			}
			if ids, _ := a.pausedIDs(); len(ids) != 1 || ids[0] != travelID {
				t.Errorf("pausedIDs = %v", ids)
			}

			// Another host, with a data dir of its own, takes it.
			other := layout.New(filepath.Join(root, "data-b"))
			b, err := openShared(layout.Shared(storeRoot), "host-b", quietLog())
			must(t, err)
			to := other.Sandbox(travelID)
			must(t, b.importPaused(travelID, to))
			checkChain(t, to.RootDisk())
			must(t, b.checkShared(to.RootDisk(), rec.Kernel))
			if got, _ := os.ReadFile(to.Memory()); string(got) != "memory" {
				t.Errorf("memory after the move: %q", got)
			}
			if _, err := os.Stat(in.Path()); !os.IsNotExist(err) {
				t.Errorf("the store still holds it: %v", err)
			}
			if err := a.importPaused(travelID, f.l.Sandbox(travelID)); wrenn.ErrorCode(err) != wrenn.ENotFound {
				t.Errorf("a second take = %v, want not found", err)
			}
			if left, _ := filepath.Glob(filepath.Join(a.dir.Paused(), ".*")); len(left) != 0 {
				t.Errorf("left in the store: %v", left)
			}

			// And pauses it again: what is the store's already stays, the
			// rest moves.
			must(t, b.exportPaused(ctx, to, rec))
			checkChain(t, in.RootDisk())
			must(t, b.removePaused(travelID))
			if ids, _ := b.pausedIDs(); len(ids) != 0 {
				t.Errorf("after removePaused: %v", ids)
			}
			bases, _ := filepath.Glob(filepath.Join(a.dir.Bases(), "*"))
			if len(bases) != 1 {
				t.Errorf("bases in the store: %v, want one copy", bases)
			}
		})
	}
}

// TestCleanShared: a host's next agent puts right what its last one left
// half-done in the store, and leaves other hosts' alone.
func TestCleanShared(t *testing.T) {
	root := t.TempDir()
	l := layout.New(filepath.Join(root, "data"))
	s, err := openShared(layout.Shared(filepath.Join(root, "shared")), "host-a", quietLog())
	must(t, err)
	other, err := openShared(s.dir, "host-b", quietLog())
	must(t, err)
	mk := func(name string) string {
		p := filepath.Join(s.dir.Paused(), name)
		must(t, os.MkdirAll(p, 0o700))
		return p
	}
	unfinished := mk("." + travelID + ".tmp-" + s.owner + "-x")
	taken := mk("." + travelID + ".taken-" + s.owner + "-y")
	theirs := mk("." + travelID + ".tmp-" + other.owner + "-z")
	s.cleanShared(l)
	if _, err := os.Stat(unfinished); !os.IsNotExist(err) {
		t.Error("an unfinished export is still there")
	}
	if _, err := os.Stat(taken); !os.IsNotExist(err) {
		t.Error("a taken sandbox not here was not given back")
	}
	if _, err := os.Stat(s.dir.PausedSandbox(travelID).Path()); err != nil {
		t.Errorf("the given back sandbox: %v", err)
	}
	if _, err := os.Stat(theirs); err != nil {
		t.Errorf("another host's export in progress was touched: %v", err)
	}
}

// TestTakeChecks: what another host left in the store is not taken if it
// would have this host open its own files: a symbolic link among a paused
// sandbox's files, a disk over a file outside the store, a kernel outside
// it.
func TestTakeChecks(t *testing.T) {
	root := t.TempDir()
	f := newTravelFixture(t, root)
	ctx := context.Background()
	s, err := openShared(layout.Shared(filepath.Join(root, "shared")), "host-a", quietLog())
	must(t, err)
	must(t, s.exportPaused(ctx, f.l.Sandbox(travelID), f.rec()))
	in := s.dir.PausedSandbox(travelID)
	rec, err := readRecord(in)
	must(t, err)

	must(t, os.Remove(in.Memory()))
	must(t, os.Symlink("/etc/passwd", in.Memory()))
	to := layout.New(filepath.Join(root, "data-b")).Sandbox(travelID)
	if err := s.importPaused(travelID, to); err == nil || !strings.Contains(err.Error(), "mem") {
		t.Fatalf("a paused sandbox with a symbolic link was taken: %v", err)
	}
	if _, err := os.Lstat(in.Memory()); err != nil {
		t.Fatalf("a refused sandbox was not given back: %v", err)
	}
	if _, err := os.Stat(to.Path()); !os.IsNotExist(err) {
		t.Fatalf("a refused sandbox left a run dir: %v", err)
	}

	must(t, rebase(ctx, in.TemplateDisk(), f.base, "raw"))
	if err := s.checkShared(in.RootDisk(), rec.Kernel); err == nil {
		t.Fatal("a disk over a file outside the store passed")
	}
	if err := s.checkShared(in.RootDisk(), f.kernel); err == nil {
		t.Fatal("a kernel outside the store passed")
	}
}
