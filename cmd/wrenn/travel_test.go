package main

import (
	"strings"
	"testing"
)

// TestSharedDirConfig: WRENN_SHARED_DIR, when set, is an absolute path and
// becomes the layout's shared store; unset, the layout has none.
func TestSharedDirConfig(t *testing.T) {
	t.Setenv(envSourceDir, t.TempDir())
	t.Setenv(envSharedDir, "shared")
	if _, err := hostConfigFromEnv(); err == nil || !strings.Contains(err.Error(), envSharedDir) {
		t.Errorf("a relative %s: %v, want an error naming it", envSharedDir, err)
	}
	t.Setenv(envSharedDir, "/mnt/wrenn-shared")
	if _, err := hostConfigFromEnv(); err != nil {
		t.Errorf("an absolute %s: %v", envSharedDir, err)
	}
	if l := hostLayout("/var/lib/wrenn"); l.Shared.Path() != "/mnt/wrenn-shared" || l.Templates() != "/mnt/wrenn-shared/templates" {
		t.Errorf("layout with a shared store: %+v, templates in %s", l, l.Templates())
	}
	t.Setenv(envSharedDir, "")
	if l := hostLayout("/var/lib/wrenn"); l.Shared != "" || l.Templates() != "/var/lib/wrenn/templates" {
		t.Errorf("layout without a shared store: %+v, templates in %s", l, l.Templates())
	}
}
