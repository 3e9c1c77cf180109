package qemu

import "time"

func rdtsc() uint64

// hostTSCkHz measures the host's TSC rate. Under TCG a guest's TSC is the
// host's, and a guest kernel without a reference timer (microvm has no
// HPET or ACPI PM timer) cannot calibrate it and falls back to jiffies,
// a 10 ms clock that makes everything in the guest slow; telling it the
// rate (tsc_early_khz) keeps it on the TSC.
func hostTSCkHz() int {
	const window = 50 * time.Millisecond
	t0, c0 := time.Now(), rdtsc()
	time.Sleep(window)
	t1, c1 := time.Now(), rdtsc()
	return int(float64(c1-c0) / float64(t1.Sub(t0).Microseconds()) * 1000)
}
