package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store"
)

// TestFleetCA: the first CA stored is the one every later caller gets.
func TestFleetCA(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		if _, _, err := db.FleetCA(ctx); wrenn.ErrorCode(err) != wrenn.ENotFound {
			t.Fatalf("FleetCA before any = %v, want not found", err)
		}
		var wg sync.WaitGroup
		got := make([][2]string, 4)
		for i := range got {
			wg.Go(func() {
				c, k, err := db.InitFleetCA(ctx, "cert-"+string(rune('a'+i)), "key-"+string(rune('a'+i)), base)
				mustNoError(t, "init CA", err)
				got[i] = [2]string{c, k}
			})
		}
		wg.Wait()
		for _, g := range got[1:] {
			if g != got[0] || g[0][len("cert-"):] != g[1][len("key-"):] {
				t.Fatalf("racing inits got %v", got)
			}
		}
	})
}

// TestRegisterHost: registration takes the pending host's current token
// once, records its specs and certificate, and makes it online.
func TestRegisterHost(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		u, _ := mustAccount(t, db, "admin@example.com", base)
		h := mustHost(t, db, wrenn.HostRegular, "", u.ID, "tok-1", base)
		specs := wrenn.HostSpecs{Arch: "x86_64", CPUCores: 8, MemoryMB: 16384, DiskGB: 100, Address: "10.0.0.7:7070"}
		cert := wrenn.HostCertificate{Serial: "01ab", HostID: h.ID, NotAfter: at(7 * 24 * time.Hour), CreatedAt: at(time.Minute)}

		_, err := db.RegisterHost(ctx, h.ID, hashOf("tok-2"), specs, cert, at(time.Minute))
		mustCode(t, "wrong token", err, wrenn.EUnauthorized)
		if _, err := db.HostCertificate(ctx, "01ab"); wrenn.ErrorCode(err) != wrenn.ENotFound {
			t.Fatalf("a refused registration recorded its certificate: %v", err)
		}

		got, err := db.RegisterHost(ctx, h.ID, hashOf("tok-1"), specs, cert, at(time.Minute))
		mustNoError(t, "register", err)
		if got.Status != wrenn.HostOnline || got.Arch != "x86_64" || *got.CPUCores != 8 || *got.MemoryMB != 16384 || *got.DiskGB != 100 ||
			got.Address != "10.0.0.7:7070" || got.TokenHash != nil || got.TokenExpiresAt != nil || !got.LastHeartbeatAt.Equal(us(at(time.Minute))) {
			t.Fatalf("registered host %+v", got)
		}
		rec, err := db.HostCertificate(ctx, "01ab")
		mustNoError(t, "certificate", err)
		want := cert
		want.NotAfter, want.CreatedAt = us(cert.NotAfter), us(cert.CreatedAt)
		mustEqual(t, "certificate record", rec, &want)

		// The token is used up.
		cert2 := cert
		cert2.Serial = "02"
		_, err = db.RegisterHost(ctx, h.ID, hashOf("tok-1"), specs, cert2, at(2*time.Minute))
		mustCode(t, "used token", err, wrenn.EUnauthorized)

		// Renewals add certificates; revocation revokes all of the host's.
		mustNoError(t, "add certificate", db.AddHostCertificate(ctx, cert2))
		mustCode(t, "same serial twice", db.AddHostCertificate(ctx, cert2), wrenn.EConflict)
		n, err := db.RevokeHostCertificates(ctx, h.ID, at(time.Hour))
		mustNoError(t, "revoke", err)
		if n != 2 {
			t.Fatalf("revoked %d certificates, want 2", n)
		}
		rec, err = db.HostCertificate(ctx, "02")
		mustNoError(t, "certificate", err)
		if rec.RevokedAt == nil || !rec.RevokedAt.Equal(us(at(time.Hour))) {
			t.Fatalf("revoked certificate %+v", rec)
		}
		if n, _ := db.RevokeHostCertificates(ctx, h.ID, at(2*time.Hour)); n != 0 {
			t.Fatalf("revoked again: %d", n)
		}
	})
}

// TestHostHeartbeats: silent online hosts become unreachable, and a
// heartbeat brings one back; a pending host takes no heartbeat.
func TestHostHeartbeats(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		u, _ := mustAccount(t, db, "admin@example.com", base)
		pending := mustHost(t, db, wrenn.HostRegular, "", u.ID, "tok-p", base)
		a := mustHost(t, db, wrenn.HostRegular, "", u.ID, "tok-a", base)
		b := mustHost(t, db, wrenn.HostRegular, "", u.ID, "tok-b", base)
		for i, h := range []*wrenn.Host{a, b} {
			_, err := db.RegisterHost(ctx, h.ID, hashOf([]string{"tok-a", "tok-b"}[i]), wrenn.HostSpecs{Address: "h:1"},
				wrenn.HostCertificate{Serial: h.ID, HostID: h.ID, NotAfter: at(time.Hour), CreatedAt: base}, base)
			mustNoError(t, "register", err)
		}
		_, err := db.HostHeartbeat(ctx, pending.ID, at(time.Second), nil)
		mustCode(t, "pending heartbeat", err, wrenn.EConflict)
		_, err = db.HostHeartbeat(ctx, wrenn.NewID(wrenn.PrefixHost), at(time.Second), nil)
		mustCode(t, "unknown heartbeat", err, wrenn.ENotFound)

		_, err = db.HostHeartbeat(ctx, a.ID, at(10*time.Second), nil)
		mustNoError(t, "heartbeat", err)
		ids, err := db.MarkHostsUnreachable(ctx, at(5*time.Second), at(12*time.Second))
		mustNoError(t, "mark", err)
		mustEqual(t, "unreachable", ids, []string{b.ID})
		got, _ := db.GetHost(ctx, b.ID)
		if got.Status != wrenn.HostUnreachable {
			t.Fatalf("b is %s", got.Status)
		}
		if ids, _ := db.MarkHostsUnreachable(ctx, at(5*time.Second), at(13*time.Second)); len(ids) != 0 {
			t.Fatalf("marked again: %v", ids)
		}
		got, err = db.HostHeartbeat(ctx, b.ID, at(14*time.Second), nil)
		mustNoError(t, "heartbeat b", err)
		if got.Status != wrenn.HostOnline || !got.LastHeartbeatAt.Equal(us(at(14*time.Second))) {
			t.Fatalf("b after heartbeat %+v", got)
		}
		if p, _ := db.GetHost(ctx, pending.ID); p.Status != wrenn.HostPending {
			t.Fatalf("pending host is %s", p.Status)
		}
	})
}

func mustCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := wrenn.ErrorCode(err); got != code {
		t.Fatalf("%s: error %v (code %q), want %q", what, err, got, code)
	}
}

// us is t as the store keeps it: UTC, to the microsecond.
func us(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// TestRevokeHost: revoking a registered host revokes its certificates and
// makes it pending with no token, in one step; a pending host is no change.
func TestRevokeHost(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		u, _ := mustAccount(t, db, "admin@example.com", base)
		h := mustHost(t, db, wrenn.HostRegular, "", u.ID, "tok", base)
		_, err := db.RegisterHost(ctx, h.ID, hashOf("tok"), wrenn.HostSpecs{Address: "h:1"},
			wrenn.HostCertificate{Serial: "aa", HostID: h.ID, NotAfter: at(time.Hour), CreatedAt: base}, base)
		mustNoError(t, "register", err)
		got, err := db.RevokeHost(ctx, h.ID, at(time.Minute))
		mustNoError(t, "revoke", err)
		if got.Status != wrenn.HostPending || got.TokenHash != nil || got.TokenExpiresAt != nil || !got.UpdatedAt.Equal(us(at(time.Minute))) {
			t.Fatalf("revoked host %+v", got)
		}
		rec, err := db.HostCertificate(ctx, "aa")
		mustNoError(t, "certificate", err)
		if rec.RevokedAt == nil {
			t.Fatal("certificate not revoked")
		}
		again, err := db.RevokeHost(ctx, h.ID, at(time.Hour))
		mustNoError(t, "revoke again", err)
		mustEqual(t, "revoked twice", again, got)
		_, err = db.RevokeHost(ctx, wrenn.NewID(wrenn.PrefixHost), base)
		mustCode(t, "unknown host", err, wrenn.ENotFound)
	})
}
