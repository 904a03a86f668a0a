package campaigns

import (
	"os"
	"strconv"
	"syscall"
)

// appendFileID appends fi's device, inode number and change time (ns) to b:
// what tells a file renamed over another, or written again, with the same
// size and mtime (dirSignature).
func appendFileID(b []byte, fi os.FileInfo) []byte {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return b
	}
	b = append(b, 0)
	b = strconv.AppendUint(b, uint64(st.Dev), 10)
	b = append(b, 0)
	b = strconv.AppendUint(b, st.Ino, 10)
	b = append(b, 0)
	return strconv.AppendInt(b, st.Ctim.Nano(), 10)
}
