package h1

import "syscall"

// alive reports whether an idle connection is still open: the server has
// neither closed it nor sent anything unasked (a TLS close_notify, a stray
// answer). One non-blocking peek at the socket; Go's own transport learns the
// same from the reader goroutine it parks on every idle connection.
func (pc *conn) alive() bool {
	if pc.raw == nil {
		return true
	}
	ok := false
	var buf [1]byte
	err := pc.raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		_ = n
		ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true // never wait for readiness
	})
	return err == nil && ok
}
