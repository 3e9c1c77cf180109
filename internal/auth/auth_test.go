package auth_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wrennhq/wrenn/internal/auth"
)

var cheap = auth.PasswordParams{Time: 1, Memory: 64, Threads: 1}

func TestPasswordHash(t *testing.T) {
	ctx := context.Background()
	h := auth.NewHasher(cheap, 1)
	enc, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("encoded hash %q", enc)
	}
	again, _ := h.Hash(ctx, "correct horse")
	if again == enc {
		t.Error("two hashes of one password are equal: salt not random")
	}
	for _, tc := range []struct {
		name, enc, pw string
		ok            bool
		err           bool
	}{
		{"right", enc, "correct horse", true, false},
		{"wrong", enc, "correct horsE", false, false},
		{"empty", enc, "", false, false},
		// Parameters come from the hash, so a hash made with other costs verifies.
		{"other params", mustHash(t, auth.NewHasher(auth.PasswordParams{Time: 2, Memory: 128, Threads: 2}, 1), "pw123456"), "pw123456", true, false},
		{"not argon2id", "$argon2i$v=19$m=64,t=1,p=1$c2FsdA$a2V5", "x", false, true},
		{"garbage", "garbage", "x", false, true},
		{"zero cost", "$argon2id$v=19$m=0,t=1,p=1$c2FsdA$a2V5", "x", false, true},
		{"no user: dummy never matches", "", "wrenn", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := h.Verify(ctx, tc.enc, tc.pw)
			if ok != tc.ok || (err != nil) != tc.err {
				t.Fatalf("Verify = %v, %v; want %v, err %v", ok, err, tc.ok, tc.err)
			}
		})
	}
}

func mustHash(t *testing.T, h *auth.Hasher, pw string) string {
	t.Helper()
	enc, err := h.Hash(context.Background(), pw)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func TestTokens(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	tok, err := auth.NewTokens(secret, clock).Issue("usr-1", "team-1", "a@b.c")
	if err != nil {
		t.Fatal(err)
	}
	c, err := auth.NewTokens(secret, clock).Parse(tok)
	if err != nil || c.Subject != "usr-1" || c.TeamID != "team-1" || c.Email != "a@b.c" {
		t.Fatalf("Parse = %+v, %v", c, err)
	}
	if got := c.ExpiresAt.Sub(now); got != auth.TokenTTL || auth.TokenTTL != 6*time.Hour {
		t.Errorf("ttl %v", got)
	}
	later := func() time.Time { return now.Add(auth.TokenTTL + time.Second) }
	if _, err := auth.NewTokens(secret, later).Parse(tok); err == nil {
		t.Error("expired token accepted")
	}
	if _, err := auth.NewTokens([]byte(strings.Repeat("o", 32)), clock).Parse(tok); err == nil {
		t.Error("token of another secret accepted")
	}
	for name, claims := range map[string]jwt.MapClaims{
		"no team":      {"sub": "usr-1", "iss": "wrenn", "exp": now.Add(time.Hour).Unix()},
		"no expiry":    {"sub": "usr-1", "team_id": "t", "iss": "wrenn"},
		"other issuer": {"sub": "usr-1", "team_id": "t", "iss": "evil", "exp": now.Add(time.Hour).Unix()},
	} {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if _, err := auth.NewTokens(secret, clock).Parse(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{
		"sub": "usr-1", "team_id": "t", "iss": "wrenn", "exp": now.Add(time.Hour).Unix(),
	}).SignedString(secret)
	if _, err := auth.NewTokens(secret, clock).Parse(hs512); err == nil {
		t.Error("HS512 token accepted; only HS256 is issued")
	}
}

func TestAPIKey(t *testing.T) {
	plain, hash, display := auth.NewAPIKey()
	if !strings.HasPrefix(plain, "wrn_") || len(plain) != 4+64 || !auth.LooksLikeAPIKey(plain) {
		t.Fatalf("key %q", plain)
	}
	if display != plain[:12]+"..." {
		t.Errorf("display %q", display)
	}
	if string(hash) != string(auth.HashAPIKey(plain)) || len(hash) != 32 {
		t.Errorf("hash mismatch")
	}
	other, _, _ := auth.NewAPIKey()
	if other == plain {
		t.Error("two keys are equal")
	}
	for _, bad := range []string{"", "wrn_", "wrn_xyz", "abc_" + plain[4:], plain + "0", "wrn_" + strings.Repeat("g", 64)} {
		if auth.LooksLikeAPIKey(bad) {
			t.Errorf("LooksLikeAPIKey(%q) = true", bad)
		}
	}
}
