package envd

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Under TCG every timer a guest arms and every interrupt it takes is
// emulated, at microseconds each. The Go runtime's sysmon thread sleeps
// 20 µs at a time for as long as a goroutine is in a long system call
// (it takes the goroutine's P back each time), and a bulk transfer's
// blocking port I/O always is one: during a 256 MiB download the guest
// spent 12–14% of its time writing the local APIC's timer and EOI
// registers. Given a timer slack of sysmonSlack (prctl(2)), the kernel
// wakes sysmon with interrupts that come anyway rather than a timer of
// its own; it still runs every sysmonSlack at the least.
const sysmonSlack = 1_000_000 // ns

// userSlack is the timer slack envd started with, which the processes it
// starts get (startProcess); 0 while envd is not tuned.
var userSlack atomic.Int64

// TuneForEmulation gives the runtime's sysmon thread a timer slack of
// sysmonSlack. Call it once, in the serving process of a guest that runs
// under emulation (the kernel command line's wrenn.emulated=1).
func TuneForEmulation(log *slog.Logger) error {
	slack, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		return fmt.Errorf("timer slack: %w", err)
	}
	tid, err := sysmonThread()
	if err != nil {
		return err
	}
	userSlack.Store(int64(slack))
	if err := os.WriteFile("/proc/"+strconv.Itoa(tid)+"/timerslack_ns", []byte(strconv.Itoa(sysmonSlack)), 0); err != nil {
		userSlack.Store(0)
		return fmt.Errorf("sysmon's timer slack: %w", err)
	}
	log.Debug("tuned for emulation", slog.Int("sysmon_tid", tid), slog.Int("user_slack_ns", slack))
	return nil
}

// sysmonThread is the thread of the runtime's sysmon: the first the
// runtime makes (runtime.main starts it before anything else runs), so
// the lowest thread ID above the process's own.
func sysmonThread() (int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, fmt.Errorf("find sysmon: %w", err)
	}
	pid, tid := os.Getpid(), 0
	for _, e := range ents {
		t, err := strconv.Atoi(e.Name())
		if err == nil && t > pid && (tid == 0 || t < tid) {
			tid = t
		}
	}
	if tid == 0 {
		return 0, errors.New("find sysmon: no thread above the process's own")
	}
	return tid, nil
}

// startProcess runs start, a fork and exec, on a thread whose timer slack
// is the one envd started with, for the new process to inherit: threads
// that sysmon made have its slack.
func startProcess(start func() error) error {
	slack := userSlack.Load()
	if slack == 0 {
		return start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// It cannot fail for a positive value; were it to, the command had
	// better run with a coarser timer than not at all.
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(slack), 0, 0, 0)
	return start()
}
