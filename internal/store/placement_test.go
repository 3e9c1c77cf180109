package store_test

import (
	"testing"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store"
)

// TestHostLoadsOf checks that the loads of some hosts are those of every
// host, for those hosts alone: pending and running sandboxes count,
// others do not, and a host with none is absent.
func TestHostLoadsOf(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		_, team := mustAccount(t, db, "a@example.com", base)
		on := func(host string, status wrenn.SandboxStatus, vcpus, memMB int) {
			sb := &wrenn.Sandbox{ID: wrenn.NewID(wrenn.PrefixSandbox), TeamID: team.ID, Template: "minimal", Status: status,
				VCPUs: vcpus, MemoryMB: memMB, HostID: host, CreatedAt: base, LastUpdated: base}
			mustNoError(t, "create sandbox", db.CreateSandbox(ctx, sb))
		}
		on("host-a", wrenn.StatusRunning, 2, 1024)
		on("host-a", wrenn.StatusPending, 1, 512)
		on("host-a", wrenn.StatusPaused, 8, 8192)
		on("host-b", wrenn.StatusRunning, 4, 2048)
		on("host-c", wrenn.StatusStopped, 1, 512)
		on("host-d", wrenn.StatusRunning, 1, 256)

		all, err := db.HostLoads(ctx)
		mustNoError(t, "host loads", err)
		mustEqual(t, "every host's load", all, map[string]wrenn.HostLoad{
			"host-a": {Sandboxes: 2, VCPUs: 3, MemoryMB: 1536},
			"host-b": {Sandboxes: 1, VCPUs: 4, MemoryMB: 2048},
			"host-d": {Sandboxes: 1, VCPUs: 1, MemoryMB: 256},
		})
		some, err := db.HostLoadsOf(ctx, []string{"host-a", "host-c", "host-d", "host-x"})
		mustNoError(t, "host loads of some", err)
		mustEqual(t, "some hosts' loads", some, map[string]wrenn.HostLoad{"host-a": all["host-a"], "host-d": all["host-d"]})
		none, err := db.HostLoadsOf(ctx, nil)
		mustNoError(t, "host loads of none", err)
		mustEqual(t, "no host's load", none, map[string]wrenn.HostLoad{})
	})
}
