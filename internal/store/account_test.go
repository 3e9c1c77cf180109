package store_test

import (
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store"
)

// TestCreateAccount checks that an account is one transaction: a taken
// email, in any case, writes nothing at all.
func TestCreateAccount(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		tests := []struct {
			name      string
			email     string
			wantCode  string // "" for success
			wantCount int    // rows in users, teams and memberships afterwards
		}{
			{"new account", "Alice@Example.com", "", 1},
			{"same email", "Alice@Example.com", wrenn.EConflict, 1},
			{"email in another case", "aLICE@example.COM", wrenn.EConflict, 1},
			{"another email", "bob@example.com", "", 2},
		}
		for i, tc := range tests {
			u := &wrenn.User{ID: wrenn.NewID(wrenn.PrefixUser), Email: tc.email, PasswordHash: "h", CreatedAt: at(time.Duration(i) * time.Second)}
			tm := &wrenn.Team{ID: wrenn.NewID(wrenn.PrefixTeam), Name: tc.name, CreatedAt: u.CreatedAt}
			err := db.CreateAccount(t.Context(), u, tm)
			if tc.wantCode == "" {
				mustNoError(t, tc.name, err)
				team, err := db.DefaultTeam(t.Context(), u.ID)
				mustNoError(t, tc.name+": default team", err)
				mustEqual(t, tc.name+": default team", team, tm)
			} else {
				wantError(t, err, tc.wantCode, "email already registered")
				_, err := db.DefaultTeam(t.Context(), u.ID)
				wantError(t, err, wrenn.ENotFound, "team not found")
			}
			mustCount(t, db, map[string]int{"users": tc.wantCount, "teams": tc.wantCount, "memberships": tc.wantCount})
		}
	})
}

func TestUserByEmail(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		alice, _ := mustAccount(t, db, "Alice@Example.com", base)
		if alice.CreatedAt.Location() != time.UTC || alice.CreatedAt.Nanosecond()%1000 != 0 {
			t.Errorf("CreateAccount left CreatedAt = %v, want it normalised to UTC µs", alice.CreatedAt)
		}
		tests := []struct {
			email string
			want  *wrenn.User // nil: not found
		}{
			{"Alice@Example.com", alice},
			{"alice@example.com", alice},
			{"ALICE@EXAMPLE.COM", alice},
			{"bob@example.com", nil},
			{"", nil},
		}
		for _, tc := range tests {
			got, err := db.UserByEmail(t.Context(), tc.email)
			if tc.want == nil {
				wantError(t, err, wrenn.ENotFound, "user not found")
				continue
			}
			mustNoError(t, tc.email, err)
			mustEqual(t, tc.email, got, tc.want)
		}
	})
}

func TestDefaultTeam(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		u, own := mustAccount(t, db, "alice@example.com", base)

		later := &wrenn.Team{ID: wrenn.NewID(wrenn.PrefixTeam), Name: "later", CreatedAt: at(time.Hour)}
		mustNoError(t, "add later team", db.AddTeam(ctx, later, u.ID, "member", at(time.Hour)))
		got, err := db.DefaultTeam(ctx, u.ID)
		mustNoError(t, "default team", err)
		mustEqual(t, "default team with a later membership", got, own)

		earlier := &wrenn.Team{ID: wrenn.NewID(wrenn.PrefixTeam), Name: "earlier", CreatedAt: at(-time.Hour).UTC().Truncate(time.Microsecond)}
		mustNoError(t, "add earlier team", db.AddTeam(ctx, earlier, u.ID, "member", at(-time.Hour)))
		got, err = db.DefaultTeam(ctx, u.ID)
		mustNoError(t, "default team", err)
		mustEqual(t, "default team with an earlier membership", got, earlier)

		_, err = db.DefaultTeam(ctx, "usr-nobody")
		wantError(t, err, wrenn.ENotFound, "team not found")
	})
}

func TestIsMember(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		alice, aliceTeam := mustAccount(t, db, "alice@example.com", base)
		bob, bobTeam := mustAccount(t, db, "bob@example.com", base)
		tests := []struct {
			name         string
			user, team   string
			wantIsMember bool
		}{
			{"own team", alice.ID, aliceTeam.ID, true},
			{"other's team", alice.ID, bobTeam.ID, false},
			{"other user's own team", bob.ID, bobTeam.ID, true},
			{"unknown user", "usr-nobody", aliceTeam.ID, false},
			{"unknown team", alice.ID, "team-none", false},
		}
		for _, tc := range tests {
			got, err := db.IsMember(t.Context(), tc.user, tc.team)
			mustNoError(t, tc.name, err)
			if got != tc.wantIsMember {
				t.Errorf("%s: IsMember = %v, want %v", tc.name, got, tc.wantIsMember)
			}
		}
	})
}
