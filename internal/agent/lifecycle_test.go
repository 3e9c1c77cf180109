package agent

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/wrennhq/wrenn"
)

// TestLifecycleDocMatchesTable checks the list of moves in lifecycle.go's
// comment against the transitions table, both ways.
func TestLifecycleDocMatchesTable(t *testing.T) {
	src, err := os.ReadFile("lifecycle.go")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[[2]lifecycle]bool{}
	for _, m := range regexp.MustCompile(`(?m)^//\t([a-z]+) +─► ([a-z]+) `).FindAllSubmatch(src, -1) {
		documented[[2]lifecycle{lifecycle(m[1]), lifecycle(m[2])}] = true
	}
	for from, tos := range transitions {
		for _, to := range tos {
			if !documented[[2]lifecycle{from, to}] {
				t.Errorf("%s → %s is in the table but not in the comment", from, to)
			}
			delete(documented, [2]lifecycle{from, to})
		}
	}
	for move := range documented {
		t.Errorf("%s → %s is in the comment but not in the table", move[0], move[1])
	}
}

func TestLifecycleTable(t *testing.T) {
	all := []lifecycle{lcStarting, lcPooled, lcRunning, lcUnresponsive, lcPausing, lcPaused, lcResuming,
		lcSnapshotting, lcDestroying, lcFailed, lcGone}
	for _, l := range all {
		tos, ok := transitions[l]
		if !ok && l != lcGone {
			t.Errorf("%s has no way out", l)
		}
		for _, to := range tos {
			if !slices.Contains(all, to) {
				t.Errorf("%s → unknown %q", l, to)
			}
		}
		// Whatever happens, a sandbox can be torn down or is already.
		if l != lcGone && !l.may(lcDestroying) && !l.may(lcGone) && !l.may(lcFailed) {
			t.Errorf("%s can neither be destroyed nor end", l)
		}
		// Refusals are client errors, never faults.
		switch code := wrenn.ErrorCode(l.refusal()); code {
		case wrenn.EConflict, wrenn.ENotFound:
		default:
			t.Errorf("%s refuses with %s", l, code)
		}
	}
	if lcGone.may(lcRunning) || lcPaused.may(lcRunning) || lcFailed.may(lcRunning) {
		t.Error("a sandbox runs again without a resume")
	}
}
