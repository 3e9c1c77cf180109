package store_test

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store"
)

func newAPIKey(teamID, userID, id, plaintext string, created time.Time) *wrenn.APIKey {
	h := sha256.Sum256([]byte(plaintext))
	return &wrenn.APIKey{ID: id, TeamID: teamID, Name: "key " + id, KeyPrefix: plaintext[:8] + "...",
		KeyHash: h[:], CreatedBy: userID, CreatedAt: created}
}

func TestAPIKeys(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		alice, teamA := mustAccount(t, db, "alice@example.com", base)
		_, teamB := mustAccount(t, db, "bob@example.com", base)

		// k2 and k3 share a creation time, so the ID breaks the tie.
		k1 := newAPIKey(teamA.ID, alice.ID, "key-1", "wrn_aaaaaaaaaaaa", at(0))
		k2 := newAPIKey(teamA.ID, alice.ID, "key-2", "wrn_bbbbbbbbbbbb", at(time.Second))
		k3 := newAPIKey(teamA.ID, alice.ID, "key-3", "wrn_cccccccccccc", at(time.Second))
		for _, k := range []*wrenn.APIKey{k2, k1, k3} {
			mustNoError(t, "create "+k.ID, db.CreateAPIKey(ctx, k))
		}
		dup := newAPIKey(teamB.ID, alice.ID, "key-4", "wrn_aaaaaaaaaaaa", at(0))
		wantError(t, db.CreateAPIKey(ctx, dup), wrenn.EConflict, "")

		list := func(team string, want []*wrenn.APIKey) {
			t.Helper()
			got, err := db.ListAPIKeys(ctx, team)
			mustNoError(t, "list api keys", err)
			if got == nil {
				t.Fatal("ListAPIKeys returned nil, want an empty slice")
			}
			mustEqual(t, "api keys of "+team, got, want)
		}
		list(teamA.ID, []*wrenn.APIKey{k3, k2, k1})
		list(teamB.ID, []*wrenn.APIKey{})

		t.Run("by hash", func(t *testing.T) {
			got, err := db.APIKeyByHash(ctx, k2.KeyHash)
			mustNoError(t, "api key by hash", err)
			mustEqual(t, "api key by hash", got, k2)
			other := sha256.Sum256([]byte("wrn_unknown"))
			_, err = db.APIKeyByHash(ctx, other[:])
			wantError(t, err, wrenn.ENotFound, "api key not found")
		})

		t.Run("touch", func(t *testing.T) {
			used := at(time.Minute)
			mustNoError(t, "touch", db.TouchAPIKey(ctx, k1.ID, used))
			got, err := db.APIKeyByHash(ctx, k1.KeyHash)
			mustNoError(t, "api key by hash", err)
			want := used.UTC().Truncate(time.Microsecond)
			if got.LastUsed == nil || *got.LastUsed != want {
				t.Errorf("last used = %v, want %v", got.LastUsed, want)
			}
			k1.LastUsed = &want
			wantError(t, db.TouchAPIKey(ctx, "key-none", used), wrenn.ENotFound, "api key not found")
		})

		t.Run("delete", func(t *testing.T) {
			tests := []struct {
				name, team, id string
				wantCode       string
			}{
				{"another team's key", teamB.ID, k1.ID, wrenn.ENotFound},
				{"own key", teamA.ID, k1.ID, ""},
				{"already deleted", teamA.ID, k1.ID, wrenn.ENotFound},
				{"unknown key", teamA.ID, "key-none", wrenn.ENotFound},
			}
			for _, tc := range tests {
				err := db.DeleteAPIKey(ctx, tc.team, tc.id)
				if tc.wantCode == "" {
					mustNoError(t, tc.name, err)
				} else {
					wantError(t, err, tc.wantCode, "api key not found")
				}
			}
			list(teamA.ID, []*wrenn.APIKey{k3, k2})
			_, err := db.APIKeyByHash(ctx, k1.KeyHash)
			wantError(t, err, wrenn.ENotFound, "api key not found")
		})
	})
}
