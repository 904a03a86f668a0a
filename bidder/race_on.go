//go:build race

package bidder

// raceEnabled: under the race detector, reads go through net.Conn.Read, not
// recvmsg (edge.go): the detector learns that a socket read happens after
// the peer's write only inside internal/poll's Read, so a raw recvmsg would
// make it report races that the kernel orders. Arrival is then the read time.
const raceEnabled = true
