package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAgentToken: a token file that is empty or only whitespace never
// becomes the token (an empty token would admit "Bearer " with nothing
// after it); a missing one is generated and kept.
func TestAgentToken(t *testing.T) {
	for _, tc := range []struct {
		name       string
		configured string
		file       *string // nil: no file
		want       string  // "": an error
	}{
		{"empty file", "", new(""), ""},
		{"whitespace file", "", new(" \n\t\n"), ""},
		{"blank configured", " \t", nil, ""},
		{"file", "", new("abc123\n"), "abc123"},
		{"configured", "from-env", new(""), "from-env"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "agent-token")
			if tc.file != nil {
				if err := os.WriteFile(path, []byte(*tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := agentToken(tc.configured, path)
			switch {
			case tc.want == "" && err == nil:
				t.Errorf("agentToken = %q, want an error", got)
			case tc.want != "" && (err != nil || got != tc.want):
				t.Errorf("agentToken = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	t.Run("generated", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "agent-token")
		tok, err := agentToken("", path)
		if err != nil || len(tok) < 32 {
			t.Fatalf("agentToken = %q, %v", tok, err)
		}
		again, err := agentToken("", path)
		if err != nil || again != tok {
			t.Errorf("second start: %q, %v; want the kept %q", again, err, tok)
		}
	})
}

// TestHostConfigAccel: WRENN_ACCEL is kvm, tcg or unset (probe); anything
// else stops start-up with a message that names the variable.
func TestHostConfigAccel(t *testing.T) {
	t.Setenv(envSourceDir, t.TempDir())
	for _, tc := range []struct {
		value string
		ok    bool
	}{
		{"", true}, {"kvm", true}, {"tcg", true},
		{"KVM", false}, {"Tcg", false}, {" kvm", false}, {"kvm ", false}, {"tcg,tb-size=64", false}, {"hvf", false}, {"none", false},
	} {
		t.Setenv(envAccel, tc.value)
		c, err := hostConfigFromEnv()
		switch {
		case tc.ok && (err != nil || c.Accel != tc.value):
			t.Errorf("%s=%q: %+v, %v; want accel %q", envAccel, tc.value, c, err, tc.value)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), envAccel)):
			t.Errorf("%s=%q: %+v, %v; want an error naming %s", envAccel, tc.value, c, err, envAccel)
		}
	}
}
