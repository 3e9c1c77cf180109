package qemu

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// Strays returns the QEMU processes started in runDir, by this driver's
// binary, whatever a record says of them: a create cut short leaves one
// that no record names. Only the exact -name argument of that run directory
// counts, so a process that merely mentions the path is never taken for
// one.
func (d *Driver) Strays(runDir string) []int {
	procs, _ := filepath.Glob("/proc/[0-9]*") // the pattern is valid: no error
	var out []int
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if ok, _ := d.runsIn(pid, runDir); ok {
			out = append(out, pid)
		}
	}
	return out
}

// runsIn reports whether process pid is this driver's QEMU of the VM
// whose run directory is runDir. A process that is gone is an error.
func (d *Driver) runsIn(pid int, runDir string) (bool, error) {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false, err
	}
	args := bytes.Split(bytes.TrimSuffix(cmdline, []byte{0}), []byte{0})
	i := slices.IndexFunc(args, func(a []byte) bool { return string(a) == "-name" })
	if i < 0 || i+1 >= len(args) || string(args[i+1]) != nameArg(runDir) {
		return false, nil
	}
	// The binary too: a process that runs something else with the same
	// arguments is not a VM of ours. (A QEMU upgraded under a running VM
	// shows "(deleted)" after its path.)
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return false, err
	}
	return exe == d.bin || exe == d.bin+" (deleted)", nil
}
