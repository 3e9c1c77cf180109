package agent

import "github.com/wrennhq/wrenn"

// Capacity is what an agent with admission c admits on its host (c.Host,
// or this machine): the vCPUs and memory its sandboxes may add up to, as
// admission counts them. A joined agent reports it to the control plane
// (issue 13), whose placement counts the host's sandboxes against it.
func (c AdmissionConfig) Capacity() (wrenn.HostCapacity, error) {
	alloc, err := newAdmitter(c, "").allocatable()
	if err != nil {
		return wrenn.HostCapacity{}, err
	}
	return wrenn.HostCapacity{VCPUs: alloc.VCPUs, MemoryMB: alloc.MemoryMB}, nil
}
