package main

import (
	"strings"
	"testing"
)

// TestAdminPlatformAdmins: the first account of a store is a platform
// admin; `user create --admin` makes another, and promote and demote
// change one.
func TestAdminPlatformAdmins(t *testing.T) {
	t.Setenv(envDatabase, "")
	data := t.TempDir()
	create := func(email string, flags ...string) string {
		t.Helper()
		args := append([]string{"admin", "--data-dir", data, "user", "create", "--email", email, "--password-stdin"}, flags...)
		out, err := runWrenn(t, "correct horse\n", args...)
		if err != nil {
			t.Fatalf("user create %s: %v\n%s", email, err, out)
		}
		return out
	}
	for _, tc := range []struct {
		email string
		flags []string
		want  string
	}{
		{"first@example.com", nil, "admin=true"},
		{"second@example.com", nil, "admin=false"},
		{"third@example.com", []string{"--admin"}, "admin=true"},
	} {
		if out := create(tc.email, tc.flags...); !strings.Contains(out, "email="+tc.email+" "+tc.want) {
			t.Errorf("user create %s %v: %s, want %s", tc.email, tc.flags, out, tc.want)
		}
	}
	for _, tc := range []struct {
		verb, email, want string
	}{
		{"promote", "SECOND@example.com", "email=second@example.com admin=true"},
		{"promote", "second@example.com", "admin=true"},
		{"demote", "first@example.com", "email=first@example.com admin=false"},
	} {
		out, err := runWrenn(t, "", "admin", "--data-dir", data, "user", tc.verb, tc.email)
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("user %s %s: %v\n%s, want %s", tc.verb, tc.email, err, out, tc.want)
		}
	}
	if _, err := runWrenn(t, "", "admin", "--data-dir", data, "user", "promote", "nobody@example.com"); err == nil || err.Error() != "user not found" {
		t.Errorf("promote of no user: %v", err)
	}
	if _, err := runWrenn(t, "", "admin", "--data-dir", data, "user", "promote"); err == nil {
		t.Error("promote without an email was accepted")
	}
}
