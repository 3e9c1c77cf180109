package client_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/client"
)

// TestHosts drives every host operation through the client: an admin's
// regular host, a team's BYOC host, tags, drain, token regeneration, and
// delete with its preview.
func TestHosts(t *testing.T) {
	e := newEnv(t, fakeHost())
	ctx := context.Background()
	login := func(email string) (*client.Client, *client.Session) {
		anon := e.client()
		s, err := anon.Signup(ctx, email, "correct horse")
		if err != nil {
			t.Fatal(err)
		}
		return anon.With(client.WithToken(s.Token)), s
	}
	admin, _ := login("root@example.com") // the first account: a platform admin
	alice, as := login("alice@example.com")

	reg, err := admin.CreateHost(ctx, client.CreateHostRequest{Type: client.HostRegular, Provider: "aws"})
	if err != nil {
		t.Fatal(err)
	}
	if reg.Host.Status != client.HostPending || !strings.HasPrefix(reg.RegistrationToken, "wrh_") || *reg.Host.Provider != "aws" ||
		reg.Host.CPUCores != nil || time.Until(reg.ExpiresAt) < 59*time.Minute {
		t.Fatalf("created %+v", reg)
	}
	_, err = alice.CreateHost(ctx, client.CreateHostRequest{Type: client.HostRegular})
	wantCode(t, err, 403, client.CodeForbidden)
	_, err = alice.CreateHost(ctx, client.CreateHostRequest{Type: client.HostBYOC})
	wantCode(t, err, 400, client.CodeInvalid)
	own, err := alice.CreateHost(ctx, client.CreateHostRequest{Type: client.HostBYOC, TeamID: as.TeamID})
	if err != nil {
		t.Fatal(err)
	}
	id := own.Host.ID

	if hs, err := admin.ListHosts(ctx); err != nil || len(hs) != 2 {
		t.Fatalf("admin lists %v, %v", hs, err)
	}
	if hs, err := alice.ListHosts(ctx); err != nil || len(hs) != 1 || hs[0].ID != id {
		t.Fatalf("alice lists %v, %v", hs, err)
	}
	_, err = alice.GetHost(ctx, reg.Host.ID)
	wantCode(t, err, 404, client.CodeNotFound)

	for _, tag := range []string{"gpu", "eu"} {
		if err := alice.AddHostTag(ctx, id, tag); err != nil {
			t.Fatal(err)
		}
	}
	if err := alice.RemoveHostTag(ctx, id, "eu"); err != nil {
		t.Fatal(err)
	}
	if tags, err := alice.ListHostTags(ctx, id); err != nil || !slices.Equal(tags, []string{"gpu"}) {
		t.Fatalf("tags %v, %v", tags, err)
	}
	wantCode(t, alice.AddHostTag(ctx, id, "not a tag"), 400, client.CodeInvalid)

	h, err := alice.DrainHost(ctx, id)
	if err != nil || !h.Draining || h.Status != client.HostPending {
		t.Fatalf("drained %+v, %v", h, err)
	}
	if h, err = alice.UndrainHost(ctx, id); err != nil || h.Draining {
		t.Fatalf("undrained %+v, %v", h, err)
	}
	if h, err = alice.GetHost(ctx, id); err != nil || !slices.Equal(h.Tags, []string{"gpu"}) {
		t.Fatalf("got %+v, %v", h, err)
	}

	again, err := alice.RegenerateHostToken(ctx, id)
	if err != nil || again.RegistrationToken == own.RegistrationToken || again.Host.ID != id {
		t.Fatalf("regenerated %+v, %v", again, err)
	}

	// A sandbox recorded on the host (placement is to come).
	now := time.Now()
	sb := &wrenn.Sandbox{ID: wrenn.NewID(wrenn.PrefixSandbox), TeamID: as.TeamID, Template: "minimal", Status: wrenn.StatusRunning,
		VCPUs: 1, MemoryMB: 512, HostID: id, CreatedAt: now, LastUpdated: now}
	if err := e.db.CreateSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	p, err := alice.PreviewDeleteHost(ctx, id)
	if err != nil || p.Host.ID != id || !slices.Equal(p.SandboxIDs, []string{sb.ID}) {
		t.Fatalf("preview %+v, %v", p, err)
	}
	err = alice.DeleteHost(ctx, id, false)
	wantCode(t, err, 409, client.CodeHostHasSandboxes)
	if got := err.(*client.Error).SandboxIDs; !slices.Equal(got, []string{sb.ID}) {
		t.Fatalf("the refusal names %v, want %v", got, []string{sb.ID})
	}
	if err := alice.DeleteHost(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	_, err = alice.GetHost(ctx, id)
	wantCode(t, err, 404, client.CodeNotFound)
	if err := admin.DeleteHost(ctx, reg.Host.ID, false); err != nil {
		t.Fatal(err)
	}
}
