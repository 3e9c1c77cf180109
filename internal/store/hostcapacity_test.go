package store_test

import (
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store"
)

// TestHostCapacity: what a host's agent reports it admits is recorded at
// registration and replaced by every heartbeat (none, from an agent that
// reports none, is none), reads back with the host and comes with
// PlacementHosts.
func TestHostCapacity(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		u, _ := mustAccount(t, db, "admin@example.com", base)
		reported := mustHost(t, db, wrenn.HostRegular, "", u.ID, "tok-a", base)
		silent := mustHost(t, db, wrenn.HostRegular, "", u.ID, "tok-b", base)
		if reported.Capacity != nil {
			t.Fatalf("a new host has capacity %+v", reported.Capacity)
		}
		register := func(h *wrenn.Host, token string, c *wrenn.HostCapacity) *wrenn.Host {
			t.Helper()
			got, err := db.RegisterHost(ctx, h.ID, hashOf(token), wrenn.HostSpecs{CPUCores: 2, MemoryMB: 8192, Address: "h:1", Capacity: c},
				wrenn.HostCertificate{Serial: h.ID, HostID: h.ID, NotAfter: at(time.Hour), CreatedAt: base}, base)
			mustNoError(t, "register", err)
			return got
		}
		got := register(reported, "tok-a", &wrenn.HostCapacity{VCPUs: 24, MemoryMB: 7168})
		mustEqual(t, "registered capacity", got.Capacity, &wrenn.HostCapacity{VCPUs: 24, MemoryMB: 7168})
		if got := register(silent, "tok-b", nil); got.Capacity != nil {
			t.Fatalf("a host registered without capacity has %+v", got.Capacity)
		}
		placement := func() map[string]*wrenn.HostCapacity {
			t.Helper()
			hosts, err := db.PlacementHosts(ctx, false)
			mustNoError(t, "placement hosts", err)
			out := map[string]*wrenn.HostCapacity{}
			for _, h := range hosts {
				out[h.ID] = h.Capacity
			}
			return out
		}
		mustEqual(t, "placement hosts", placement(), map[string]*wrenn.HostCapacity{
			reported.ID: {VCPUs: 24, MemoryMB: 7168}, silent.ID: nil})

		// A restart with new settings: the next heartbeat says so.
		got, err := db.HostHeartbeat(ctx, reported.ID, at(time.Second), &wrenn.HostCapacity{VCPUs: 8, MemoryMB: 0})
		mustNoError(t, "heartbeat", err)
		mustEqual(t, "capacity after a heartbeat", got.Capacity, &wrenn.HostCapacity{VCPUs: 8, MemoryMB: 0})
		got, err = db.GetHost(ctx, reported.ID)
		mustNoError(t, "get host", err)
		mustEqual(t, "capacity read back", got.Capacity, &wrenn.HostCapacity{VCPUs: 8, MemoryMB: 0})
		_, err = db.HostHeartbeat(ctx, silent.ID, at(time.Second), &wrenn.HostCapacity{VCPUs: 6, MemoryMB: 5000})
		mustNoError(t, "heartbeat", err)
		mustEqual(t, "placement hosts after heartbeats", placement(), map[string]*wrenn.HostCapacity{
			reported.ID: {VCPUs: 8, MemoryMB: 0}, silent.ID: {VCPUs: 6, MemoryMB: 5000}})
		// An agent that reports none (an older one, put back): none.
		got, err = db.HostHeartbeat(ctx, reported.ID, at(2*time.Second), nil)
		mustNoError(t, "heartbeat", err)
		if got.Capacity != nil {
			t.Fatalf("capacity after a heartbeat without one: %+v", got.Capacity)
		}
		hosts, err := db.ListHosts(ctx)
		mustNoError(t, "list hosts", err)
		for _, h := range hosts {
			if want := (h.ID == silent.ID); (h.Capacity != nil) != want {
				t.Fatalf("listed host %s has capacity %+v", h.ID, h.Capacity)
			}
		}
	})
}
