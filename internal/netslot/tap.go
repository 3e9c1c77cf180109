package netslot

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// tapFlags suit QEMU's virtio-net over `-netdev tap,fd=N`: Ethernet frames,
// no packet-information prefix, and a virtio-net header QEMU uses for
// checksum and segmentation offloads.
const tapFlags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR

// openTap attaches a descriptor to TAP name in the calling thread's
// namespace, creating the device if it does not exist. /dev/net/tun resolves
// names in the namespace of the thread that opens it.
func openTap(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	ifr.SetUint16(tapFlags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	return fd, nil
}

// createTap makes TAP name in the calling thread's namespace and keeps it
// after its creating descriptor closes, so it waits for QEMU (and dies with
// the namespace).
func createTap(name string) error {
	fd, err := openTap(name)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
		return fmt.Errorf("TUNSETPERSIST %s: %w", name, err)
	}
	return nil
}
