package redistest

import "syscall"

// holdPort binds a socket to 127.0.0.1:port without listening on it, and
// returns a function that closes it. While it is held, a connection to the
// port is refused, as with no server there, but the kernel gives the port to
// no one else: not as the port of a listener on :0 (another test's server in
// this or any other process, which a client of the stopped server would then
// reach and take for it), nor as the source port of a client's connection
// (which, dialled to the same port on the same address, would connect to
// itself). It binds with SO_REUSEADDR, as redis-server does, because the
// stopped server's closed connections linger in TIME_WAIT on the port.
func holdPort(port int) (release func(), err error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return func() { syscall.Close(fd) }, nil
}
