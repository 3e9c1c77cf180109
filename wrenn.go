// Package wrenn holds Wrenn's domain types: users, teams, API keys,
// sandboxes and templates, the identifiers that name them, the one error
// type every layer returns, and the interfaces of a host agent (agent.go)
// that the control plane and the agent share. It imports only the standard
// library so that every other package may import it.
package wrenn

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"
)

// ID prefixes: an ID says what kind of thing it names.
const (
	PrefixUser    = "usr-"
	PrefixTeam    = "team-"
	PrefixAPIKey  = "key-"
	PrefixSandbox = "sb-"
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns prefix followed by 80 random bits in lowercase base32.
func NewID(prefix string) string {
	var b [10]byte
	rand.Read(b[:]) // never fails on Linux; panics rather than return weak bytes
	return prefix + idEncoding.EncodeToString(b[:])
}

// ValidID reports whether id is one NewID(prefix) could have made. A host
// agent checks the IDs it is sent before they name files or reach a
// command line.
func ValidID(prefix, id string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || len(rest) != 16 {
		return false
	}
	for _, r := range rest {
		if !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') {
			return false
		}
	}
	return true
}

// User is an account that logs in with email and password.
type User struct {
	ID           string
	Email        string // stored as given; unique regardless of case
	PasswordHash string // PHC-encoded memory-hard hash, never the password
	// IsAdmin: a platform admin, who manages the fleet's hosts. The first
	// account made on a server is one; `wrenn admin user promote` makes more.
	IsAdmin   bool
	CreatedAt time.Time
}

// Team owns API keys, sandboxes and snapshot templates. Every user has a
// default team created with the account.
type Team struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// RoleOwner is the role a user holds in the team made with their account.
const RoleOwner = "owner"

// APIKey authorizes sandbox work for one team. Only the SHA-256 of the
// plaintext key is kept.
type APIKey struct {
	ID        string
	TeamID    string
	Name      string
	KeyPrefix string // for display, e.g. "wrn_ab12cd34..."
	KeyHash   []byte // SHA-256 of the plaintext key
	CreatedBy string // user ID
	CreatedAt time.Time
	LastUsed  *time.Time
}

// SandboxStatus is where a sandbox is in its life.
type SandboxStatus string

const (
	StatusPending SandboxStatus = "pending"
	StatusRunning SandboxStatus = "running"
	StatusPaused  SandboxStatus = "paused"
	StatusStopped SandboxStatus = "stopped"
	StatusError   SandboxStatus = "error"
	// StatusMissing: the sandbox ran on a host that stopped heartbeating
	// (issue 13, host loss). It is running again if its host comes back
	// with it within the control plane's grace, and error after that.
	StatusMissing SandboxStatus = "missing"
)

// Sandbox is one microVM belonging to a team.
type Sandbox struct {
	ID         string
	TeamID     string
	Template   string
	Status     SandboxStatus
	VCPUs      int
	MemoryMB   int
	TimeoutSec int // inactivity limit; 0 means none
	GuestIP    string
	HostIP     string
	HostID     string // the host agent that owns the VM; empty until placed
	Network    Network
	// AutoPause: inactivity pauses the sandbox rather than destroying it.
	AutoPause bool
	// AutoPaused: it was paused by its inactivity timeout, and the next
	// operation on it resumes it.
	AutoPaused bool
	// Envs is the default environment of every command run in it.
	Envs map[string]string
	// Metadata is the team's own labels, returned and filterable.
	Metadata     map[string]string
	CreatedAt    time.Time
	StartedAt    *time.Time
	LastActiveAt *time.Time
	LastUpdated  time.Time
}

// TemplateType says where a template came from.
type TemplateType string

const (
	TemplateBase     TemplateType = "base"     // built from packages; visible to every team
	TemplateSnapshot TemplateType = "snapshot" // made from a team's running sandbox
)

// Template is what sandboxes are created from. Base templates have no team.
type Template struct {
	Name      string
	TeamID    string // empty for base templates
	Type      TemplateType
	VCPUs     *int // nil when the template does not fix it
	MemoryMB  *int
	SizeBytes int64
	CreatedAt time.Time
}
