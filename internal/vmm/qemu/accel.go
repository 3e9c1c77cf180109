package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Accelerators.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// kvmProbeTimeout bounds how long a guest kernel may take to say hello
// under KVM before KVM is judged not to work.
const kvmProbeTimeout = 10 * time.Second

// probeAccel decides between KVM and TCG. KVM is used only when a guest
// kernel really boots under it: on hosts such as kvm-pvm, /dev/kvm opens and
// VMs are created, but ordinary guest kernels hang.
func probeAccel(ctx context.Context, qemuBin, kernel string) (accel, reason string) {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return AccelTCG, fmt.Sprintf("/dev/kvm is not usable (%v)", err)
	}
	f.Close()
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		return AccelTCG, "/dev/kvm is kvm-pvm, which cannot run unmodified guest kernels"
	} else if !errors.Is(err, fs.ErrNotExist) {
		return AccelTCG, fmt.Sprintf("cannot tell the KVM flavour: %v", err)
	}
	ok, err := kernelBootsUnderKVM(ctx, qemuBin, kernel)
	if err != nil {
		return AccelTCG, fmt.Sprintf("KVM probe failed: %v", err)
	}
	if !ok {
		return AccelTCG, fmt.Sprintf("a guest kernel did not boot under KVM within %s", kvmProbeTimeout)
	}
	return AccelKVM, "a guest kernel boots under KVM"
}

// kernelBootsUnderKVM boots kernel under KVM with no disk and reports
// whether it printed its banner on the serial console in time.
func kernelBootsUnderKVM(ctx context.Context, qemuBin, kernel string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, kvmProbeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemuBin,
		"-M", "microvm,acpi=off", "-enable-kvm", "-cpu", "host", "-m", "128", "-smp", "1",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-serial", "stdio", "-kernel", kernel,
		"-append", "console=ttyS0 panic=-1 reboot=t")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	// With no root disk the kernel panics and, with -no-reboot, QEMU
	// exits; under a KVM that cannot run it, it hangs until the timeout.
	_ = cmd.Run()
	return strings.Contains(out.String(), "Linux version"), nil
}
