package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// initConfig is how PID 1 is told to run.
type initConfig struct {
	cmdline   string   // file holding the kernel command line
	serveArgs []string // arguments of the serving child
}

// Restart backoff of the serving child, and the grace periods of shutdown.
const (
	restartMin    = 100 * time.Millisecond
	restartMax    = 5 * time.Second
	restartReset  = 10 * time.Second // a child that ran this long restarts at once
	shutdownGrace = 5 * time.Second
)

// Attribute keys of envd's console log lines.
const (
	attrError    = "error"
	attrPID      = "pid"
	attrStatus   = "status"
	attrSignal   = "signal"
	attrTarget   = "target"
	attrHostname = "hostname"
	attrIP       = "ip"
	attrPort     = "port"
	attrListen   = "listen"
)

// runInit does PID 1's duties (docs/GUEST.md), then supervises the serving
// child until a shutdown signal.
func runInit(cfg initConfig, log *slog.Logger) error {
	os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	mountAll(log)
	ensureConsole()
	b, err := os.ReadFile(cfg.cmdline)
	if err != nil {
		log.Warn("read kernel command line", slog.Any(attrError, err))
	}
	boot := parseCmdline(string(b))
	if boot.Hostname != "" {
		if err := unix.Sethostname([]byte(boot.Hostname)); err != nil {
			log.Warn("set hostname", slog.Any(attrError, err))
		}
	}
	if err := configureNetwork(boot); err != nil {
		log.Warn("configure network", slog.Any(attrError, err))
	}
	if err := writeResolvConf("/etc/resolv.conf", boot); err != nil {
		log.Warn("write resolv.conf", slog.Any(attrError, err))
	}
	log.Info("envd init done", slog.String(attrHostname, boot.Hostname), slog.String(attrIP, boot.IP))

	args := cfg.serveArgs
	if boot.Emulated {
		args = append(slices.Clip(args), "--emulated")
	}
	sv := &supervisor{log: log, exe: selfPath(), args: args}
	sv.run()
	if os.Getpid() == 1 {
		powerOff(log)
	}
	return nil
}

// selfPath is this binary, by name where it can be reached (so the child
// shows as envd in ps), else through /proc (its directory may be mounted over).
func selfPath() string {
	if p, err := os.Executable(); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "/proc/self/exe"
}

// supervisor runs the serving child, restarts it when it dies, reaps every
// orphan the VM's processes leave to PID 1, and passes signals on.
type supervisor struct {
	log  *slog.Logger
	exe  string
	args []string

	pid      int // the serving child; 0 while there is none
	started  time.Time
	backoff  time.Duration
	stopping bool
	restart  chan struct{} // a restart is due
}

func (s *supervisor) run() {
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGPWR,
		syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	s.restart = make(chan struct{}, 1)
	var kill <-chan time.Time
	s.start()
	for {
		select {
		case sig := <-sigs:
			switch sig {
			case syscall.SIGCHLD:
				s.reap()
			case syscall.SIGTERM, syscall.SIGINT, syscall.SIGPWR:
				s.log.Info("envd shutting down", slog.String(attrSignal, sig.String()))
				s.stopping = true
				s.signal(syscall.SIGTERM)
				kill = time.After(shutdownGrace)
			default:
				s.signal(sig.(syscall.Signal))
			}
		case <-s.restart:
			if !s.stopping && s.pid == 0 {
				s.start()
			}
		case <-kill:
			s.signal(syscall.SIGKILL)
		}
		if s.stopping && s.pid == 0 {
			return
		}
	}
}

func (s *supervisor) start() {
	argv := append([]string{"envd"}, s.args...)
	pid, err := syscall.ForkExec(s.exe, argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		s.log.Error("start envd serve", slog.Any(attrError, err))
		s.started = time.Now()
		s.scheduleRestart()
		return
	}
	s.pid, s.started = pid, time.Now()
	s.log.Info("envd serve started", slog.Int(attrPID, pid))
}

// reap collects every child that has exited: orphans silently, the
// serving child with a log line and a restart.
func (s *supervisor) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		if pid != s.pid {
			continue
		}
		s.pid = 0
		if s.stopping {
			s.log.Info("envd serve exited", slog.Int(attrPID, pid), slog.String(attrStatus, describe(ws)))
			continue
		}
		s.log.Warn("envd serve exited; restarting", slog.Int(attrPID, pid), slog.String(attrStatus, describe(ws)))
		s.scheduleRestart()
	}
}

// scheduleRestart restarts the child after a backoff that grows while it
// keeps dying young.
func (s *supervisor) scheduleRestart() {
	if time.Since(s.started) > restartReset {
		s.backoff = 0
	}
	s.backoff = min(max(2*s.backoff, restartMin), restartMax)
	time.AfterFunc(s.backoff, func() {
		select {
		case s.restart <- struct{}{}:
		default:
		}
	})
}

func (s *supervisor) signal(sig syscall.Signal) {
	if s.pid != 0 {
		syscall.Kill(s.pid, sig)
	}
}

func describe(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit %d", ws.ExitStatus())
	case ws.Signaled():
		return "signal: " + ws.Signal().String()
	}
	return fmt.Sprintf("status %#x", uint32(ws))
}

// powerOff ends the VM the way init does: everything gets SIGTERM, then
// SIGKILL, disks are synced, and the machine is powered off.
func powerOff(log *slog.Logger) {
	syscall.Kill(-1, syscall.SIGTERM)
	time.Sleep(time.Second)
	syscall.Kill(-1, syscall.SIGKILL)
	unix.Sync()
	log.Info("envd powering off")
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		log.Error("power off", slog.Any(attrError, err))
	}
}
