// Command envd here is a stand-in for the real guest agent, for the image
// builder's tests only: as PID 1 it mounts what GUEST.md says envd mounts,
// prints what the image holds, and reboots (which ends QEMU -no-reboot).
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

func main() {
	fmt.Println("standin-envd: pid", os.Getpid())
	mounts := []struct{ src, dst, fstype, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", ""},
		{"devpts", "/dev/pts", "devpts", "newinstance,ptmxmode=0666"},
		{"tmpfs", "/dev/shm", "tmpfs", "mode=1777"},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777"},
	}
	for _, m := range mounts {
		os.MkdirAll(m.dst, 0o755)
		if err := syscall.Mount(m.src, m.dst, m.fstype, 0, m.data); err != nil && err != syscall.EBUSY {
			fmt.Println("standin-envd: mount", m.dst, err)
		}
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(cmdline)) {
		if h, ok := strings.CutPrefix(f, "wrenn.hostname="); ok {
			syscall.Sethostname([]byte(h))
		}
	}
	script := `echo "uptime: $(cut -d' ' -f1 /proc/uptime)s"; uname -r; hostname;
python3 --version; curl --version | head -n1; bash --version | head -n1;
python3 -c 'import ssl, json, sqlite3; print("python ok", ssl.OPENSSL_VERSION)';
ls -l /usr/local/bin/envd; df -h / | tail -n1; nproc; free -m | head -n2;
ls /sys/class/virtio-ports 2>/dev/null; echo STANDIN-CHECK-DONE`
	cmd := exec.Command("/bin/bash", "-c", script)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	if err := cmd.Run(); err != nil {
		fmt.Println("standin-envd: check failed:", err)
	}
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART)
}
