package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/disk"
	"github.com/wrennhq/wrenn/internal/layout"
)

func TestCollectImages(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img is not installed")
	}
	l := layout.New(t.TempDir())
	long := time.Now().Add(-2 * imageMinAge)
	file := func(path string, stale bool) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
		if stale {
			if err := os.Chtimes(path, long, long); err != nil {
				t.Fatal(err)
			}
		}
		return path
	}
	overlay := func(base, path string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := disk.Overlay(context.Background(), base, "raw", path); err != nil {
			t.Fatal(err)
		}
	}
	current := file(l.PinnedRootFS("current"), true)
	bySandbox := file(l.PinnedRootFS("sandbox"), true)
	byTemplate := file(l.PinnedRootFS("template"), true)
	byWarm := file(l.PinnedRootFS("warm"), true)
	unused := file(l.PinnedRootFS("unused"), true)
	young := file(l.PinnedRootFS("young"), false)
	overlay(bySandbox, l.Sandbox("sb-1").RootDisk())
	overlay(byTemplate, l.Template("team-1", "snap").Disk())
	keptWarm := l.WarmSnapshot("kept")
	overlay(byWarm, keptWarm.Disk())
	oldWarm := l.WarmSnapshot("old")
	overlay(unused, oldWarm.Disk())
	if err := os.Chtimes(oldWarm.Path(), long, long); err != nil {
		t.Fatal(err)
	}

	collector{l: l, bases: []Base{{Name: "minimal", RootFS: current}}, log: discardLog()}.collect([]layout.TemplateDir{keptWarm})

	for path, want := range map[string]bool{
		current: true, bySandbox: true, byTemplate: true, byWarm: true, young: true,
		keptWarm.Path(): true, unused: false, oldWarm.Path(): false,
	} {
		_, err := os.Stat(path)
		if got := err == nil; got != want {
			t.Errorf("%s kept: %v, want %v", path, got, want)
		}
	}

	// A shared images directory is never collected.
	shared := l
	shared.ImagesRoot = l.Images()
	file(l.PinnedRootFS("unused-shared"), true)
	collector{l: shared, log: discardLog()}.collect(nil)
	if _, err := os.Stat(l.PinnedRootFS("unused-shared")); err != nil {
		t.Error("collected a shared images directory")
	}
}
