package fleet_test

import (
	"crypto/tls"
	"net/http"
	"testing"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/client"
	"github.com/wrennhq/wrenn/internal/fleet"
)

// Hosts' capacity (issue 13): what an agent reports it admits, over the
// link, and placement counting each host's sandboxes against it.

func intp(n int) *int { return &n }

// TestLinkCapacity: registration and heartbeats carry what the agent
// admits, over the real fleet listener; the host records it (and shows
// it), a heartbeat without it (an agent older than the report) records
// none, and half of one or a negative one is refused.
func TestLinkCapacity(t *testing.T) {
	f := newLinkFixture(t)
	ctx := t.Context()
	h, token := f.newHost(t)
	keyPEM, csrPEM, err := fleet.NewKeyCSR()
	if err != nil {
		t.Fatal(err)
	}
	req := client.RegisterHostRequest{Token: token, Arch: "x86_64", CPUCores: 2, MemoryMB: 8192, Address: "10.0.0.9:7070", CSR: string(csrPEM),
		CapacityVCPUs: intp(24)}
	_, err = f.fleetClient(t, nil).RegisterHost(ctx, req)
	wantAPIError(t, "half a capacity", err, http.StatusBadRequest, wrenn.EInvalid)
	req.CapacityMemoryMB = intp(-1)
	_, err = f.fleetClient(t, nil).RegisterHost(ctx, req)
	wantAPIError(t, "negative capacity", err, http.StatusBadRequest, wrenn.EInvalid)
	req.CapacityMemoryMB = intp(7168) // the token was not used up
	reg, err := f.fleetClient(t, nil).RegisterHost(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if reg.Host.ID != h.ID || reg.Host.CapacityVCPUs == nil || *reg.Host.CapacityVCPUs != 24 || *reg.Host.CapacityMemoryMB != 7168 {
		t.Fatalf("registered host's capacity: %v, %v", reg.Host.CapacityVCPUs, reg.Host.CapacityMemoryMB)
	}
	capacity := func() *wrenn.HostCapacity {
		t.Helper()
		got, err := f.db.GetHost(ctx, h.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Capacity
	}
	if c := capacity(); c == nil || *c != (wrenn.HostCapacity{VCPUs: 24, MemoryMB: 7168}) {
		t.Fatalf("stored capacity %+v", c)
	}

	cert, err := tls.X509KeyPair([]byte(reg.Certificate), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := f.fleetClient(t, &cert)
	// Restarted with new settings, the agent's heartbeats say so.
	if err := c.HostHeartbeatWith(ctx, h.ID, client.HostHeartbeatRequest{CapacityVCPUs: intp(48), CapacityMemoryMB: intp(14336)}); err != nil {
		t.Fatal(err)
	}
	if c := capacity(); c == nil || *c != (wrenn.HostCapacity{VCPUs: 48, MemoryMB: 14336}) {
		t.Fatalf("capacity after a heartbeat: %+v", c)
	}
	err = c.HostHeartbeatWith(ctx, h.ID, client.HostHeartbeatRequest{CapacityMemoryMB: intp(1)})
	wantAPIError(t, "half a capacity in a heartbeat", err, http.StatusBadRequest, wrenn.EInvalid)
	err = c.HostHeartbeatWith(ctx, h.ID, client.HostHeartbeatRequest{CapacityVCPUs: intp(-8), CapacityMemoryMB: intp(1)})
	wantAPIError(t, "negative capacity in a heartbeat", err, http.StatusBadRequest, wrenn.EInvalid)
	if c := capacity(); c == nil || c.VCPUs != 48 {
		t.Fatalf("a refused heartbeat changed the capacity: %+v", c)
	}
	if err := c.HostHeartbeat(ctx, h.ID); err != nil {
		t.Fatal(err)
	}
	if c := capacity(); c != nil {
		t.Fatalf("capacity after a heartbeat without one: %+v", c)
	}
}
