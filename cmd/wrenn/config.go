package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wrennhq/wrenn/internal/control"

	"github.com/joho/godotenv"
)

// serverConfig is everything `wrenn server` is told, from flags, the
// environment and a .env file in the working directory, in that order.
type serverConfig struct {
	Listen      string
	DataDir     string
	DatabaseURL string
	JWTSecret   string
	LogLevel    slog.Level
	// Agent is where the host agent is: "local" runs one in this process,
	// "none" runs without (sandbox operations answer 502), anything else is
	// the address of a `wrenn agent` ("host:port" or "unix:/path").
	Agent      string
	AgentToken string
	// Host configures the host agent run in this process for Agent "local".
	Host hostConfig
	// MaxUploadBytes bounds the non-streaming upload; 0 means the default.
	MaxUploadBytes int64
	// ReconcileInterval and SettleGrace tune the reconciler; 0 means its
	// defaults.
	ReconcileInterval time.Duration
	SettleGrace       time.Duration
	// StoppedRetention is how long a destroyed sandbox stays readable;
	// 0 means the reconciler's default.
	StoppedRetention time.Duration
	// ConnsPerClient bounds the connections one client address holds.
	ConnsPerClient int
	// Network is the operator's say in sandboxes' egress policies.
	Network control.NetworkConfig
	// Limits are the operator's bounds on one sandbox and on each team.
	Limits control.Limits
	// SignupClosed refuses signups (WRENN_SIGNUP=closed).
	SignupClosed bool
	// StatsStep is how often the teams' stats are recorded; 0 means
	// control.DefaultStatsStep.
	StatsStep time.Duration
	// Fleet is the agent link's (issue 13, fleetlink.go).
	Fleet fleetConfig
}

// Environment variables `wrenn server` reads.
const (
	envListen    = "WRENN_LISTEN_ADDR"
	envDataDir   = "WRENN_DATA_DIR"
	envDatabase  = "DATABASE_URL"
	envJWTSecret = "WRENN_JWT_SECRET"
	envLogLevel  = "WRENN_LOG_LEVEL"
	envMaxUpload = "WRENN_MAX_UPLOAD_BYTES"
	// How often the records are compared with the host agent, and how
	// long they may disagree before the reconciler acts.
	envReconcileInterval = "WRENN_RECONCILE_INTERVAL"
	envSettleGrace       = "WRENN_SETTLE_GRACE"
	// How long a destroyed sandbox stays readable, stopped.
	envStoppedRetention = "WRENN_STOPPED_RETENTION"
	envConnsPerClient   = "WRENN_MAX_CONNS_PER_CLIENT"
	// How often the teams' running sandboxes are recorded for their
	// stats and usage (issue 11).
	envStatsStep = "WRENN_STATS_STEP"
)

// envDuration reads a positive duration ("10s", "250ms") from key; unset
// is 0.
func envDuration(key string) (time.Duration, error) {
	v := os.Getenv(key)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 24*time.Hour {
		return 0, fmt.Errorf("%s=%q: want a duration such as 10s, at most 24h", key, v)
	}
	return d, nil
}

const defaultListen = "127.0.0.1:8080"

// loadDotEnv sets variables from ./.env that the environment lacks.
func loadDotEnv() error {
	err := godotenv.Load()
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("read .env: %w", err)
}

func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/wrenn"
	}
	if d, err := os.UserHomeDir(); err == nil {
		return filepath.Join(d, ".local", "share", "wrenn")
	}
	return "wrenn-data"
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return l, fmt.Errorf("%s: %w", envLogLevel, err)
	}
	return l, nil
}

// jwtSecret returns the configured secret, or the one kept at path,
// generating it on first start so restarts don't log everyone out.
func jwtSecret(configured, path string) ([]byte, error) {
	if configured != "" {
		if len(configured) < 32 {
			return nil, fmt.Errorf("%s must be at least 32 characters", envJWTSecret)
		}
		return []byte(configured), nil
	}
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return nil, fmt.Errorf("%s: secret too short", path)
		}
		return []byte(s), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read jwt secret: %w", err)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	s := hex.EncodeToString(raw)
	// O_EXCL: if two processes race on first start, one wins and the other
	// reads the winner's secret.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return jwtSecret("", path)
	}
	if err != nil {
		return nil, fmt.Errorf("create jwt secret: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("write jwt secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write jwt secret: %w", err)
	}
	return []byte(s), nil
}
