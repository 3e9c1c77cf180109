// Package disk makes and removes sandboxes' copy-on-write root disks. The
// host agent is its only user.
package disk

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Overlay creates a qcow2 image at path whose reads fall through to base
// (of format baseFormat, "raw" or "qcow2") until written: the template stays
// untouched and shared, and the sandbox's changes cost only what it writes.
func Overlay(ctx context.Context, base, baseFormat, path string) error {
	cmd := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2",
		"-F", baseFormat, "-b", base, path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("create overlay: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
