package envd

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPlainCommandLines(t *testing.T) {
	t.Parallel()
	requireDash(t)
	env, err := commandEnv(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	noShebang := filepath.Join(dir, "noshebang")
	if err := os.WriteFile(noShebang, []byte("echo hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line  string
		plain bool
	}{
		{"ls", true},
		{"  ls   -la\t/tmp ", true},
		{"dd if=/dev/zero of=/dev/null bs=1k count=1", true},
		{"python3 -m http.server 8000", true},
		{"/bin/echo a,b:c@d%e+f", true},
		{"true", false},            // a builtin
		{"echo hi", false},         // a builtin
		{"cd /tmp", false},         // a builtin
		{"if", false},              // a reserved word
		{"FOO=1 env", false},       // an assignment
		{"ls\nls", false},          // two commands
		{"ls *", false},            // a glob
		{"ls ~", false},            // a tilde
		{"echo $HOME", false},      // an expansion
		{"ls 'a b'", false},        // quotes
		{"ls > out", false},        // a redirection
		{"ls; ls", false},          // a list
		{"ls # note", false},       // a comment
		{"ls \\-a", false},         // an escape
		{"ls é", false},            // not ASCII
		{"no-such-program", false}, // the shell reports it
		{"/etc/passwd", false},     // not executable: the shell reports it
		{noShebang, false},         // the shell would run it itself
		{"", false},
		{"   ", false},
	} {
		_, _, _, plain := plainCommand(tc.line, env, dir)
		if plain != tc.plain {
			t.Errorf("plainCommand(%q) = %v, want %v", tc.line, plain, tc.plain)
		}
	}
	if _, _, _, plain := plainCommand("ls", append(env, "PWD=/"), dir); plain {
		t.Error("a request that sets PWD ran without the shell")
	}
	relPath := slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "PATH=") })
	if _, _, _, plain := plainCommand("ls", append(relPath, "PATH=bin:/usr/bin:/bin"), dir); plain {
		t.Error("a PATH with a relative entry was searched without the shell")
	}
}

// TestPlainCommandAsShell: a plain command line gives what /bin/sh -c
// gives: output, errors, exit code and environment, PWD included, from a
// working directory reached through a symbolic link.
func TestPlainCommandAsShell(t *testing.T) {
	t.Parallel()
	requireDash(t)
	real := t.TempDir()
	script := filepath.Join(real, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho script \"$@\" \"$0\"\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"env",
		"ls -la",
		"cat no-such-file",
		"/bin/echo a   b\tc",
		"./script one two",
		"sh -c exit",
		"printenv PWD HOME PATH",
		"expr 1 + 2",
		"ls /no/such/dir",
	} {
		m := &execParams{Cmd: line, Dir: link, Env: map[string]string{"EXTRA": "x"}}
		cmd, err := command(m)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if cmd.Path == shell {
			t.Fatalf("%q went through the shell", line)
		}
		viaShell := &exec.Cmd{Path: shell, Args: []string{"sh", "-c", line}, Env: slices.DeleteFunc(slices.Clone(cmd.Env),
			func(kv string) bool { return strings.HasPrefix(kv, "PWD=") }), Dir: cmd.Dir}
		direct, shelled := run(t, cmd), run(t, viaShell)
		if line == "env" {
			direct.stdout, shelled.stdout = sortedLines(direct.stdout), sortedLines(shelled.stdout)
		}
		if direct != shelled {
			t.Errorf("%q\n without the shell: %+v\n through the shell: %+v", line, direct, shelled)
		}
	}
}

type ran struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, cmd *exec.Cmd) ran {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ran{out.String(), errOut.String(), ee.ExitCode()}
	}
	if err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return ran{out.String(), errOut.String(), 0}
}

func sortedLines(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	slices.Sort(l)
	return strings.Join(l, "\n")
}

// requireDash skips where /bin/sh is not dash: plain command lines run
// without the shell only under dash, whose behaviour they reproduce.
func requireDash(t *testing.T) {
	t.Helper()
	if sh, err := filepath.EvalSymlinks(shell); err != nil || filepath.Base(sh) != "dash" {
		t.Skipf("/bin/sh is not dash (%s, %v)", sh, err)
	}
}
