package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/layout"
	"github.com/wrennhq/wrenn/internal/mock"
	"github.com/wrennhq/wrenn/internal/netslot"
)

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testManager is a Manager with no driver, network or bases: enough for
// the bookkeeping around them.
func testManager(t *testing.T) *Manager {
	t.Helper()
	m := New(Config{Layout: layout.New(t.TempDir()), Logger: discardLog()})
	t.Cleanup(m.Close)
	return m
}

// addRunning puts a running sandbox with machine mach and a run directory
// into m.
func addRunning(t *testing.T, m *Manager, mach *machine) *sandbox {
	t.Helper()
	id := wrenn.NewID(wrenn.PrefixSandbox)
	sb := newSandbox(id, m.cfg.Layout.Sandbox(id), m.log, lcRunning)
	if err := os.MkdirAll(sb.dir.Path(), 0o700); err != nil {
		t.Fatal(err)
	}
	sb.mach = mach
	m.mu.Lock()
	m.sandboxes[id] = sb
	m.mu.Unlock()
	return sb
}

// A destroy whose VM will not stop leaves the sandbox failed and listed,
// and the retry stops the VM rather than forgetting it.
func TestDestroyRetriesWhatFailed(t *testing.T) {
	m := testManager(t)
	stops, slotFrees := 0, 0
	vm := &mock.VM{StopFn: func(context.Context) error {
		stops++
		if stops == 1 {
			return errors.New("qemu stuck")
		}
		return nil
	}}
	mach := &machine{vm: vm}
	mach.release.addBackground(func(context.Context) error { slotFrees++; return nil })
	mach.release.add(vm.Stop)
	sb := addRunning(t, m, mach)

	if err := m.DestroySandbox(t.Context(), sb.id); err == nil {
		t.Fatal("destroy succeeded though the VM did not stop")
	}
	list, _ := m.ListSandboxes(t.Context())
	if len(list) != 1 || list[0].Running || list[0].Paused {
		t.Fatalf("after a failed destroy the host lists %+v, want the sandbox, not running", list)
	}
	if _, err := os.Stat(sb.dir.Path()); err != nil {
		t.Fatalf("the run directory of a VM that may still run went: %v", err)
	}
	if err := m.DestroySandbox(t.Context(), sb.id); err != nil {
		t.Fatalf("retried destroy: %v", err)
	}
	if stops != 2 || slotFrees != 1 {
		t.Errorf("the VM was stopped %d times and the slot freed %d times; want 2 and 1", stops, slotFrees)
	}
	if _, err := os.Stat(sb.dir.Path()); !os.IsNotExist(err) {
		t.Errorf("run directory left: %v", err)
	}
	if list, _ := m.ListSandboxes(t.Context()); len(list) != 0 {
		t.Errorf("still listed: %+v", list)
	}
	if err := m.DestroySandbox(t.Context(), sb.id); err != nil {
		t.Errorf("destroying what is gone: %v", err)
	}
}

func TestRefusesBadIDs(t *testing.T) {
	m := testManager(t)
	for _, id := range []string{"", "sb-1", "../../etc", "sb-aaaaaaaaaaaaaaa,", "pool-aaaaaaaaaaaaaaaa"} {
		if err := m.DestroySandbox(t.Context(), id); wrenn.ErrorCode(err) != wrenn.EInvalid {
			t.Errorf("destroy %q: %v", id, err)
		}
		spec := wrenn.SandboxSpec{ID: id, Template: "minimal", VCPUs: 1, MemoryMB: 512}
		if _, err := m.CreateSandbox(t.Context(), spec); wrenn.ErrorCode(err) != wrenn.EInvalid {
			t.Errorf("create %q: %v", id, err)
		}
	}
	good := wrenn.NewID(wrenn.PrefixSandbox)
	for _, spec := range []wrenn.SandboxSpec{
		{ID: good, TeamID: "team-x/../..", Template: "minimal", VCPUs: 1, MemoryMB: 512},
		{ID: good, TemplateTeamID: wrenn.NewID(wrenn.PrefixTeam), Template: "../x", VCPUs: 1, MemoryMB: 512},
		{ID: good, TemplateTeamID: "team-", Template: "x", VCPUs: 1, MemoryMB: 512},
	} {
		if _, err := m.CreateSandbox(t.Context(), spec); wrenn.ErrorCode(err) != wrenn.EInvalid {
			t.Errorf("create %+v: %v", spec, err)
		}
	}
	for _, tm := range []wrenn.Template{{TeamID: "team-1", Name: "ok"}, {TeamID: wrenn.NewID(wrenn.PrefixTeam), Name: "a,b"}} {
		if err := m.CreateSnapshot(t.Context(), good, &tm); wrenn.ErrorCode(err) != wrenn.EInvalid {
			t.Errorf("snapshot %+v: %v", tm, err)
		}
		if err := m.DeleteSnapshot(t.Context(), tm.TeamID, tm.Name); wrenn.ErrorCode(err) != wrenn.EInvalid {
			t.Errorf("delete snapshot %+v: %v", tm, err)
		}
	}
}

func TestListSnapshots(t *testing.T) {
	m := testManager(t)
	team := wrenn.NewID(wrenn.PrefixTeam)
	made := time.Unix(1e9, 0).UTC()
	for _, dir := range []string{"done", ".done.tmp-x", "no-meta"} {
		if err := os.MkdirAll(filepath.Join(m.cfg.Layout.Templates(), team, dir), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(m.cfg.Layout.Templates(), "not-a-team", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeJSONFile(m.cfg.Layout.Template(team, "done").Meta(), templateMeta{CreatedAt: made}); err != nil {
		t.Fatal(err)
	}
	got, err := m.ListSnapshots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []wrenn.Template{
		{Name: "done", TeamID: team, Type: wrenn.TemplateSnapshot, CreatedAt: made},
		{Name: "no-meta", TeamID: team, Type: wrenn.TemplateSnapshot},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ListSnapshots = %+v, want %+v", got, want)
	}
}

// failingNetwork has no slots to give.
type failingNetwork struct{ Network }

func (failingNetwork) Acquire(context.Context) (*netslot.Slot, error) {
	return nil, errors.New("no free slot")
}

// A create that fails part way frees what it took, leaves no run
// directory and no sandbox, and the ID can be used again.
func TestCreateFailureUndoes(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img is not installed")
	}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "root.ext4")
	if err := os.WriteFile(rootfs, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	m := New(Config{Layout: layout.New(dir), Logger: discardLog(), Network: failingNetwork{},
		Driver: &mock.Driver{NameFn: func() string { return "fake" }}, Bases: []Base{{Name: "minimal", RootFS: rootfs}}})
	t.Cleanup(m.Close)
	spec := wrenn.SandboxSpec{ID: wrenn.NewID(wrenn.PrefixSandbox), Template: "minimal", VCPUs: 2, MemoryMB: 256}
	for range 2 {
		if _, err := m.CreateSandbox(t.Context(), spec); err == nil {
			t.Fatal("create succeeded without a network slot")
		}
		if list, _ := m.ListSandboxes(t.Context()); len(list) != 0 {
			t.Fatalf("a failed create is listed: %+v", list)
		}
		if _, err := os.Stat(m.cfg.Layout.Sandbox(spec.ID).Path()); !os.IsNotExist(err) {
			t.Fatalf("a failed create left its run directory: %v", err)
		}
	}
}

func (failingNetwork) Adopt(context.Context, int) (*netslot.Slot, error) {
	return nil, errors.New("no such slot")
}

// Adopting a running sandbox whose network slot is gone fails, and lets
// go of what it took.
func TestAdoptMachineFailure(t *testing.T) {
	a := adopter{net: failingNetwork{}, driver: &mock.Driver{NameFn: func() string { return "fake" }}, log: discardLog()}
	if _, err := a.adoptMachine(t.Context(), record{ID: wrenn.NewID(wrenn.PrefixSandbox), Slot: 3}, "/nonexistent"); err == nil {
		t.Fatal("adopted a sandbox without its network slot")
	}
}
