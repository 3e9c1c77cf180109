// Package disk makes and removes sandboxes' copy-on-write root disks. The
// host agent is its user, and the QEMU driver reads a disk's backing chain
// to show it, read-only, in the VMM's jail.
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

// Flatten writes to dst a qcow2 image over base (of format baseFormat)
// holding everything src's chain has above base: a template's disk that
// depends on nothing but the base, however many snapshots it descends
// from. src must not be in use.
func Flatten(ctx context.Context, src, base, baseFormat, dst string) error {
	cmd := exec.CommandContext(ctx, "qemu-img", "convert", "-q", "-O", "qcow2",
		"-B", base, "-F", baseFormat, src, dst)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("flatten disk: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
