package agent

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestCleanupRunThen(t *testing.T) {
	var ran []string
	step := func(name string, err error) func(context.Context) error {
		return func(context.Context) error { ran = append(ran, name); return err }
	}
	var c cleanup
	c.addBackground(step("slot", nil))
	c.add(step("vm", errors.New("vm stuck")))
	c.add(step("client", nil))
	var deferred []func(context.Context) error
	err := c.runThen(context.Background(), func(f func(context.Context) error) { deferred = append(deferred, f) })
	if !slices.Equal(ran, []string{"client", "vm"}) || err == nil || err.Error() != "vm stuck" {
		t.Fatalf("ran %v, err %v; want client then vm, and vm's error", ran, err)
	}
	if len(deferred) != 1 {
		t.Fatalf("%d steps left for later, want the slot's", len(deferred))
	}
	deferred[0](context.Background())
	if !slices.Equal(ran, []string{"client", "vm", "slot"}) {
		t.Errorf("ran %v", ran)
	}
	// The step that failed stays, so a retry runs it again; the others go.
	ran = nil
	if err := c.run(context.Background()); err == nil || !slices.Equal(ran, []string{"vm"}) {
		t.Fatalf("retry ran %v, err %v; want the failed vm step only", ran, err)
	}
	c.steps = nil

	// run runs the background steps too, newest first.
	ran = nil
	c.addBackground(step("slot", nil))
	c.add(step("vm", nil))
	if err := c.run(context.Background()); err != nil || !slices.Equal(ran, []string{"vm", "slot"}) {
		t.Errorf("run: ran %v, err %v", ran, err)
	}
}
