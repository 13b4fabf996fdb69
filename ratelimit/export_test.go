package ratelimit

// InLine returns how many callers of account×bucket are in this replica's
// line, the head included, for tests that need callers queued in a known
// order.
func (r *Redis) InLine(account, bucket string) int {
	l := r.accounts[account].lane(r.buckets, bucket)
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.waiters)
	if l.busy {
		n++
	}
	return n
}
