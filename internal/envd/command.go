package envd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/wrennhq/wrenn"
)

// The environment every command starts from; the request's env adds to it.
const (
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	defaultHome = "/root"
	shell       = "/bin/sh"
)

func defaultEnv() map[string]string {
	return map[string]string{"PATH": defaultPath, "HOME": defaultHome, "LANG": "C.UTF-8", "TERM": "xterm"}
}

// startError is a command that could not start, reported as its result
// the way a shell would: a message and exit code 126 or 127.
type startError struct {
	code int
	msg  string
}

func (e *startError) Error() string { return e.msg }

// command builds the command m asks for: its program directly when it has
// args, else m.Cmd through /bin/sh -c. It runs in its own process group.
func command(m *execParams) (*exec.Cmd, error) {
	if m.Cmd == "" {
		return nil, wrenn.Errorf(wrenn.EInvalid, "cmd is required")
	}
	if strings.ContainsRune(m.Cmd, 0) || slices.ContainsFunc(m.Args, func(a string) bool { return strings.ContainsRune(a, 0) }) {
		return nil, wrenn.Errorf(wrenn.EInvalid, "cmd and args must not contain NUL bytes")
	}
	env, err := commandEnv(m.Env)
	if err != nil {
		return nil, err
	}
	dir, err := workDir(m.Dir)
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{Env: env, Dir: dir, SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	if len(m.Args) == 0 {
		cmd.Path, cmd.Args = shell, []string{"sh", "-c", m.Cmd}
		return cmd, nil
	}
	path, err := lookPath(m.Cmd, pathOf(env), dir)
	if err != nil {
		return nil, err
	}
	cmd.Path, cmd.Args = path, append([]string{m.Cmd}, m.Args...)
	return cmd, nil
}

func commandEnv(extra map[string]string) ([]string, error) {
	env := defaultEnv()
	for k, v := range extra {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, wrenn.Errorf(wrenn.EInvalid, "env %q is not a valid variable", k)
		}
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out, nil
}

func pathOf(env []string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			return v
		}
	}
	return ""
}

// workDir is dir made absolute (relative to HOME) and checked, or the
// default: HOME if it exists, else /.
func workDir(dir string) (string, error) {
	if dir == "" {
		if fi, err := os.Stat(defaultHome); err == nil && fi.IsDir() {
			return defaultHome, nil
		}
		return "/", nil
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(defaultHome, dir)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", wrenn.Errorf(wrenn.EInvalid, "working directory %s does not exist", dir)
	}
	if !fi.IsDir() {
		return "", wrenn.Errorf(wrenn.EInvalid, "working directory %s is not a directory", dir)
	}
	return dir, nil
}

// lookPath finds name as a shell would: a name with a slash is a path
// (relative to dir), any other is searched for in path.
func lookPath(name, path, dir string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			return "", &startError{exitNotFound, fmt.Sprintf("envd: %s: No such file or directory", name)}
		case fi.IsDir() || fi.Mode()&0o111 == 0:
			return "", &startError{exitNotExecutable, fmt.Sprintf("envd: %s: Permission denied", name)}
		}
		return p, nil
	}
	for d := range strings.SplitSeq(path, ":") {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &startError{exitNotFound, fmt.Sprintf("envd: %s: command not found", name)}
}

// program names what m runs, for messages: its program, or the shell
// that runs its command line (which may be long).
func program(m *execParams) string {
	if len(m.Args) == 0 {
		return shell
	}
	return m.Cmd
}

// startFailure explains why exec(2) refused a program, the way a shell does.
func startFailure(name string, err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("exec: start: %w", err)
	}
	switch {
	case errors.Is(errno, fs.ErrNotExist):
		return &startError{exitNotFound, fmt.Sprintf("envd: %s: %s", name, "No such file or directory")}
	case errno == syscall.EACCES || errno == syscall.ENOEXEC || errno == syscall.EISDIR || errno == syscall.EPERM:
		return &startError{exitNotExecutable, fmt.Sprintf("envd: %s: %s", name, errno.Error())}
	}
	// Refusals a shell has no exit code for, such as an argument over
	// 128 KiB (E2BIG), are the request's fault.
	return refusal(fmt.Errorf("exec: start: %w", err), wrenn.EInvalid, "cannot run "+name)
}
