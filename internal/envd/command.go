package envd

import (
	"errors"
	"fmt"
	"io"
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
		if path, args, pwd, ok := plainCommand(m.Cmd, env, dir); ok {
			cmd.Path, cmd.Args, cmd.Env = path, args, append(env, "PWD="+pwd)
			return cmd, nil
		}
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

// A plain command line is one /bin/sh -c would only split into words and
// run as one program found on PATH: every byte is a letter, a digit, a
// blank or one of plainPunct, so nothing in it is quoted, expanded,
// redirected, globbed or a second command, and its first word is neither
// an assignment nor one of the shell's builtins or reserved words.
// command runs such a line's program itself, with the environment the
// shell would have given it: under TCG a dynamically linked shell costs a
// guest about as much again as the program it starts (BenchmarkForkExec).
const plainPunct = "_-./:=@%+,"

// shellWords are dash's builtins and reserved words made of plain bytes:
// a command line starting with one stays with the shell.
var shellWords = map[string]bool{
	".": true, ":": true, "alias": true, "bg": true, "break": true, "cd": true, "chdir": true,
	"command": true, "continue": true, "echo": true, "eval": true, "exec": true, "exit": true,
	"export": true, "false": true, "fc": true, "fg": true, "getopts": true, "hash": true,
	"jobs": true, "kill": true, "local": true, "printf": true, "pwd": true, "read": true,
	"readonly": true, "return": true, "set": true, "shift": true, "test": true, "times": true,
	"trap": true, "true": true, "type": true, "ulimit": true, "umask": true, "unalias": true,
	"unset": true, "wait": true,
	"case": true, "do": true, "done": true, "elif": true, "else": true, "esac": true, "fi": true,
	"for": true, "if": true, "in": true, "then": true, "until": true, "while": true,
}

// plainCommand reports the program, arguments and PWD with which command
// runs line without a shell, or ok false if line is not plain or /bin/sh
// is not dash (another shell may give its programs another environment).
// A line whose program is not found, cannot be run, or is a script with
// no #! line (which the shell would run itself) stays with the shell too,
// so that every failure is reported as the shell reports it.
func plainCommand(line string, env []string, dir string) (path string, args []string, pwd string, ok bool) {
	for i := 0; i < len(line); i++ {
		c := line[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == ' ' || c == '\t' ||
			strings.IndexByte(plainPunct, c) >= 0) {
			return "", nil, "", false
		}
	}
	args = strings.Fields(line)
	if len(args) == 0 || shellWords[args[0]] || strings.Contains(args[0], "=") {
		return "", nil, "", false
	}
	if slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "PWD=") }) {
		return "", nil, "", false // the shell keeps it only if it names dir
	}
	if sh, err := filepath.EvalSymlinks(shell); err != nil || filepath.Base(sh) != "dash" {
		return "", nil, "", false
	}
	// The shell executes a name with a slash as written, relative to dir
	// (a script's $0 shows it), and any other as the PATH entry it found
	// it in joined to it, so only absolute entries are followed here.
	search := pathOf(env)
	if slices.ContainsFunc(strings.Split(search, ":"), func(d string) bool { return !filepath.IsAbs(d) }) {
		return "", nil, "", false
	}
	found, err := lookPath(args[0], search, dir)
	if err != nil || !execFormat(found) {
		return "", nil, "", false
	}
	path = found
	if strings.Contains(args[0], "/") {
		path = args[0] // os/exec resolves it in dir, as the shell does
	}
	// dash exports PWD, and with none in its environment it is getcwd(3):
	// dir with its symbolic links resolved.
	pwd, err = filepath.EvalSymlinks(dir)
	if err != nil {
		return "", nil, "", false
	}
	return path, args, pwd, true
}

// execFormat reports whether the kernel runs the file at path itself: an
// ELF binary or a script with a #! line.
func execFormat(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var head [4]byte
	n, _ := io.ReadFull(f, head[:])
	return n >= 2 && string(head[:2]) == "#!" || n == 4 && string(head[:]) == "\x7fELF"
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

// program names what cmd runs, for messages: its program as the request
// named it, or the shell that runs its command line (which may be long).
func program(cmd *exec.Cmd) string {
	if cmd.Path == shell {
		return shell
	}
	return cmd.Args[0]
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
