package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wrennhq/wrenn/client"
)

func TestProfileIsPrivate(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "cfg"))
	t.Setenv(envCLIURL, "")
	t.Setenv(envCLIAPIKey, "")
	path, err := saveProfile(profile{URL: "http://x:1", Token: "jwt", APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "cfg", "wrenn", "config.json"); path != want {
		t.Fatalf("path %s, want %s", path, want)
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), mode)
		}
	}
	// Saving again keeps it private and leaves no temporary files.
	if _, err := saveProfile(profile{URL: "http://y:2"}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("config dir holds %d entries, want 1", len(ents))
	}
	p, err := loadProfile()
	if err != nil || p.URL != "http://y:2" || p.APIKey != "" {
		t.Fatalf("loaded %+v, %v", p, err)
	}
	t.Setenv(envCLIURL, "http://env:3")
	t.Setenv(envCLIAPIKey, "envkey")
	if p, _ := loadProfile(); p.URL != "http://env:3" || p.APIKey != "envkey" {
		t.Errorf("environment did not override: %+v", p)
	}
}

func TestNotLoggedInSaysWhatToDo(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("HOME", dir)
	t.Setenv(envCLIURL, "")
	t.Setenv(envCLIAPIKey, "")
	for _, args := range [][]string{{"sandbox", "ls"}, {"keys", "ls"}, {"exec", "sb", "--", "true"}} {
		root := rootCommand()
		root.SetArgs(args)
		root.SetOut(&bytes.Buffer{})
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), "wrenn login") {
			t.Errorf("%v: %v, want a hint to run wrenn login", args, err)
		}
	}
}

func TestParseCpArg(t *testing.T) {
	for in, want := range map[string]remotePath{
		"sb-1:/root/f": {id: "sb-1", path: "/root/f"},
		"./a:b":        {path: "./a:b"},
		"/tmp/x":       {path: "/tmp/x"},
		"file.txt":     {path: "file.txt"},
		"dir/f:x":      {path: "dir/f:x"},
		"C:":           {id: "", path: ""}, // checked below: an error
	} {
		got, err := parseCpArg(in)
		if in == "C:" {
			if err == nil {
				t.Errorf("%q: no error for a relative sandbox path", in)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := parseCpArg("sb:rel/path"); err == nil {
		t.Error("relative sandbox path accepted")
	}
}

func TestParsePairs(t *testing.T) {
	m, err := parsePairs("env", []string{"A=1", "B=x=y", "C="})
	if err != nil || m["A"] != "1" || m["B"] != "x=y" || m["C"] != "" || len(m) != 3 {
		t.Fatalf("%v, %v", m, err)
	}
	for _, bad := range []string{"A", "=1"} {
		if _, err := parsePairs("env", []string{bad}); err == nil || !strings.Contains(err.Error(), "KEY=VALUE") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestExplain(t *testing.T) {
	err := explain(&client.Error{Status: 401, Code: client.CodeUnauthorized, Message: "bad key"}, "listing")
	if !strings.Contains(err.Error(), "bad key") || !strings.Contains(err.Error(), "wrenn login") {
		t.Errorf("%v", err)
	}
	err = explain(&client.Error{Status: 404, Code: client.CodeNotFound, Message: "no such sandbox"}, "getting")
	if !strings.Contains(err.Error(), "no such sandbox") || !strings.Contains(err.Error(), "wrenn sandbox ls") {
		t.Errorf("%v", err)
	}
	if explain(nil, "x") != nil {
		t.Error("nil error explained")
	}
	if err := explain(errors.New("boom"), "x"); err.Error() != "x: boom" {
		t.Errorf("%v", err)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh"} {
		var out bytes.Buffer
		root := rootCommand()
		root.SetArgs([]string{"completion", sh})
		root.SetOut(&out)
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "wrenn") {
			t.Errorf("%s completion script does not name wrenn", sh)
		}
	}
}

func TestUnreachableServerSaysWhatToDo(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("HOME", dir)
	t.Setenv(envCLIURL, "http://127.0.0.1:1")
	t.Setenv(envCLIAPIKey, "wrn_whatever")
	root := rootCommand()
	root.SetArgs([]string{"sandbox", "ls"})
	root.SetOut(&bytes.Buffer{})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "is the server running") {
		t.Errorf("%v, want a hint about the server", err)
	}
}

func TestCpNeedsOneSandboxSide(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("HOME", dir)
	for _, args := range [][]string{{"a", "b"}, {"sb-1:/a", "sb-2:/b"}} {
		root := rootCommand()
		root.SetArgs(append([]string{"cp"}, args...))
		root.SetOut(&bytes.Buffer{})
		if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "one side must be in a sandbox") {
			t.Errorf("%v: %v", args, err)
		}
	}
}

func TestExecFlagsNeedDashes(t *testing.T) {
	root := rootCommand()
	root.SetArgs([]string{"exec", "sb-1", "ls", "-la"})
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "wrenn exec ID -- CMD") {
		t.Errorf("%v, want a hint to use --", err)
	}
}
