package main

// The user's side of the wrenn binary: commands that reach a Wrenn server
// through the Go SDK (package client) and nothing else. This file holds
// what they share: the profile in the user's config directory, the
// client built from it, output as tables or JSON, and errors that say what
// to do next.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/wrennhq/wrenn/client"
)

// Environment variables that override the stored profile.
const (
	envCLIURL    = "WRENN_URL"
	envCLIAPIKey = "WRENN_API_KEY"
	envCLIPass   = "WRENN_PASSWORD"
)

// profile is what `wrenn login` stores: the server and the credentials
// for it. Token is a session JWT (for API keys); APIKey authenticates
// sandbox, file and snapshot calls.
type profile struct {
	URL    string `json:"url"`
	Email  string `json:"email,omitempty"`
	Token  string `json:"token,omitempty"`
	APIKey string `json:"api_key,omitempty"`
}

// configPath is where the profile lives: <user config dir>/wrenn/config.json.
func configPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the config directory: %w (set HOME or XDG_CONFIG_HOME)", err)
	}
	return filepath.Join(dir, "wrenn", "config.json"), nil
}

// loadProfile reads the stored profile (none is an empty one) and applies
// the environment's overrides.
func loadProfile() (profile, error) {
	var p profile
	path, err := configPath()
	if err != nil {
		return p, err
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return p, err
	default:
		if err := json.Unmarshal(b, &p); err != nil {
			return p, fmt.Errorf("%s: %w (fix it, or remove it and run `wrenn login` again)", path, err)
		}
	}
	if v := os.Getenv(envCLIURL); v != "" {
		p.URL = v
	}
	if v := os.Getenv(envCLIAPIKey); v != "" {
		p.APIKey = v
	}
	return p, nil
}

// saveProfile writes p readable by the user alone: the directory 0700,
// the file 0600, replaced whole through a temporary file.
func saveProfile(p profile) (string, error) {
	path, err := configPath()
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, ".config-*.json")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name()) // after the rename, nothing
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return "", err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(f.Name(), path)
}

// need says which credential a command needs.
type need int

const (
	needAPIKey need = iota // sandbox, file and snapshot calls
	needToken              // account calls: API keys
)

// newAPIClient builds the SDK client from the profile, or says how to get
// one that works.
func newAPIClient(n need) (*client.Client, profile, error) {
	p, err := loadProfile()
	if err != nil {
		return nil, p, err
	}
	if p.URL == "" {
		return nil, p, errors.New("no server configured: run `wrenn login --url URL ...` or set " + envCLIURL)
	}
	var opts []client.Option
	switch n {
	case needAPIKey:
		if p.APIKey == "" {
			return nil, p, errors.New("no API key: run `wrenn keys create NAME --save` after `wrenn login --email`, or `wrenn login --api-key KEY`, or set " + envCLIAPIKey)
		}
		opts = append(opts, client.WithAPIKey(p.APIKey))
	case needToken:
		if p.Token == "" {
			return nil, p, errors.New("not logged in with an account: run `wrenn login --url URL --email EMAIL`")
		}
		opts = append(opts, client.WithToken(p.Token))
	}
	opts = append(opts, client.WithUserAgent("wrenn-cli"))
	c, err := client.New(p.URL, opts...)
	if err != nil {
		return nil, p, fmt.Errorf("server URL %q: %w (run `wrenn login --url URL` with a URL like http://localhost:8080)", p.URL, err)
	}
	return c, p, nil
}

// explain adds to an API error what the user can do about it.
func explain(err error, what string) error {
	if err == nil {
		return nil
	}
	var ae *client.Error
	if errors.As(err, &ae) {
		hint := ""
		switch ae.Code {
		case client.CodeUnauthorized:
			hint = "your credentials were refused: run `wrenn login` again"
		case client.CodeNotFound:
			hint = "check the name or ID (`wrenn sandbox ls`, `wrenn snapshot ls`)"
		case client.CodeConflict:
			hint = "check its state with `wrenn sandbox get ID`"
		case client.CodeForbidden:
			hint = "the operator does not allow it"
		case client.CodeQuotaExceeded:
			hint = "remove sandboxes you no longer need (`wrenn sandbox rm ID`)"
		case client.CodeRateLimited, client.CodeHostFull:
			hint = "try again in a moment"
		}
		msg := fmt.Sprintf("%s: %s", what, ae.Message)
		if hint != "" {
			msg += " (" + hint + ")"
		}
		return errors.New(msg)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) {
		return fmt.Errorf("%s: %w (is the server running? check the URL of `wrenn login` or %s)", what, err, envCLIURL)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// exitCodeError ends the process with code, saying nothing more: the
// command it ran has already said it.
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// output prints a command's result: as JSON with --json, else as a table.
type output struct {
	json bool
	w    io.Writer
}

func addJSONFlag(cmd *cobra.Command, o *output) {
	cmd.PersistentFlags().BoolVar(&o.json, "json", false, "print JSON instead of a table")
}

func (o *output) writer(cmd *cobra.Command) io.Writer {
	if o.w != nil {
		return o.w
	}
	return cmd.OutOrStdout()
}

// print writes v as JSON, or as the table of header and rows.
func (o *output) print(cmd *cobra.Command, v any, header []string, rows [][]string) error {
	w := o.writer(cmd)
	if o.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// parsePairs parses K=V flags into a map.
func parsePairs(flag string, pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(pairs))
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--%s %q: want KEY=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}
