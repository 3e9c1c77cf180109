package main

import (
	"bytes"
	"strings"
	"testing"
)

// runWrenn runs the wrenn command line with args and stdin, in a working
// directory of its own, and returns what it printed.
func runWrenn(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	t.Chdir(t.TempDir()) // no stray .env
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// TestAdmin: `wrenn admin` creates a user with their team, and shows and
// sets the team's quota in the store the server uses.
func TestAdmin(t *testing.T) {
	t.Setenv(envDatabase, "")
	t.Setenv(envQuotaVCPUs, "16")
	data := t.TempDir()
	out, err := runWrenn(t, "correct horse\n", "admin", "--data-dir", data, "user", "create", "--email", "op@example.com", "--password-stdin")
	if err != nil || !strings.Contains(out, "team_id=team-") {
		t.Fatalf("user create: %v\n%s", err, out)
	}
	if _, err := runWrenn(t, "correct horse\n", "admin", "--data-dir", data, "user", "create", "--email", "op@example.com", "--password-stdin"); err == nil ||
		err.Error() != "email already registered" {
		t.Fatalf("a second user create: %v", err)
	}
	if _, err := runWrenn(t, "short\n", "admin", "--data-dir", data, "user", "create", "--email", "x@example.com", "--password-stdin"); err == nil {
		t.Fatal("a short password was accepted")
	}

	out, err = runWrenn(t, "", "admin", "--data-dir", data, "quota", "set", "--email", "op@example.com", "--sandboxes", "5", "--snapshot-mb", "0")
	if err != nil {
		t.Fatalf("quota set: %v\n%s", err, out)
	}
	out, err = runWrenn(t, "", "admin", "--data-dir", data, "quota", "set", "--email", "op@example.com", "--memory-mb", "1024")
	if err != nil {
		t.Fatalf("quota set: %v\n%s", err, out)
	}
	for _, want := range []string{
		"sandboxes    5      team     0",
		"vcpus        16     default  0",
		"memory-mb    1024   team     0",
		"snapshot-mb  none   team     0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("quota show lacks %q:\n%s", want, out)
		}
	}
	out, err = runWrenn(t, "", "admin", "--data-dir", data, "quota", "set", "--email", "op@example.com", "--sandboxes", "default")
	if err != nil || !strings.Contains(out, "sandboxes    20     default") || !strings.Contains(out, "memory-mb    1024   team") {
		t.Fatalf("quota set default: %v\n%s", err, out)
	}
	out, err = runWrenn(t, "", "admin", "--data-dir", data, "quota", "set", "--email", "op@example.com", "--reset")
	if err != nil || !strings.Contains(out, "memory-mb    32768  default") || !strings.Contains(out, "snapshot-mb  51200  default") {
		t.Fatalf("quota reset: %v\n%s", err, out)
	}
	out, err = runWrenn(t, "", "admin", "--data-dir", data, "quota", "show", "--team", "team-nope")
	if err == nil || err.Error() != "team not found" {
		t.Fatalf("quota show of no team: %v\n%s", err, out)
	}
	for _, bad := range []string{"-1", "lots", "1.5"} {
		if _, err := runWrenn(t, "", "admin", "--data-dir", data, "quota", "set", "--email", "op@example.com", "--vcpus", bad); err == nil {
			t.Errorf("--vcpus %s accepted", bad)
		}
	}
}

func TestSignupFromEnv(t *testing.T) {
	for v, want := range map[string]bool{"": false, "open": false, "closed": true} {
		t.Setenv(envSignup, v)
		if got, err := signupClosedFromEnv(); err != nil || got != want {
			t.Errorf("%s=%q: closed %v, %v", envSignup, v, got, err)
		}
	}
	t.Setenv(envSignup, "shut")
	if _, err := signupClosedFromEnv(); err == nil {
		t.Error("an unknown value was accepted")
	}
}
