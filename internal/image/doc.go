// Package image builds what every sandbox boots from: the guest kernel (an
// uncompressed vmlinux from Debian's linux-source-6.1, tinyconfig plus the
// embedded kernel.config) and base templates (a Debian root file system
// made with mmdebstrap, plus the guest agent envd, as an ext4 image).
//
// Every artifact is keyed by a SHA-256 over its inputs and lives where
// package layout says; a build with unchanged inputs does nothing, and a
// change rebuilds only what depends on it. Artifacts are built in a
// temporary directory beside their final place and renamed into it, so an
// interrupted build never leaves a half artifact that looks finished.
//
// The `wrenn image` command and the host agent import it; nothing here
// knows about sandboxes or the API.
package image
