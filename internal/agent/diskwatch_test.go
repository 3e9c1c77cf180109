package agent

import (
	"os"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/layout"
)

// TestDiskWatch: while the host's free disk is above the reserve the
// watch only takes note; below it, it ends the running sandbox whose files
// grew most since it first saw them — not the one that takes most — and
// leaves the rest, and paused sandboxes, alone.
func TestDiskWatch(t *testing.T) {
	free := int64(2000)
	m := New(Config{Layout: layout.New(t.TempDir()), Logger: discardLog(), Admission: AdmissionConfig{
		DiskReserveMB: 1000, DiskOvercommit: 3, DiskWatchInterval: time.Hour, Host: fixedHost(&free),
	}})
	t.Cleanup(m.Close)
	big := addRunning(t, m, &machine{})    // takes most, grows little
	filler := addRunning(t, m, &machine{}) // grows most
	paused := addRunning(t, m, nil)
	paused.lc = lcPaused
	grow(t, big.dir.Memory(), 6)
	grow(t, paused.dir.Memory(), 9)

	m.disk.round() // takes note of what each has
	grow(t, big.dir.Memory(), 1)
	grow(t, filler.dir.RootDisk(), 3)
	m.disk.round()
	if big.lifecycle() != lcRunning || filler.lifecycle() != lcRunning {
		t.Fatalf("above the reserve the watch ended a sandbox: %s, %s", big.lifecycle(), filler.lifecycle())
	}

	free = 900
	m.disk.round()
	if filler.lifecycle() != lcFailed {
		t.Fatalf("the sandbox that grew most is %s, want failed", filler.lifecycle())
	}
	if _, err := os.Stat(filler.dir.Path()); !os.IsNotExist(err) {
		t.Fatalf("the failed sandbox's files are still there: %v", err)
	}
	if big.lifecycle() != lcRunning || paused.lifecycle() != lcPaused {
		t.Fatalf("the watch ended more than it had to: %s, %s", big.lifecycle(), paused.lifecycle())
	}

	// Still below: the next running sandbox goes; a paused one never does.
	m.disk.round()
	m.disk.round()
	if big.lifecycle() != lcFailed || paused.lifecycle() != lcPaused {
		t.Fatalf("still below the reserve: %s, %s; want failed, paused", big.lifecycle(), paused.lifecycle())
	}
}
