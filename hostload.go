package wrenn

// HostLoad is what the sandboxes recorded on one host hold (issue 13,
// placement): those pending or running, which have a VM. Paused and
// stopped sandboxes hold none.
type HostLoad struct {
	Sandboxes int
	VCPUs     int
	MemoryMB  int
}
