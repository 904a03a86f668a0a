package budget

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ErrStoreInUse is StartEmbedded's error when another process (or another
// embedded server of this one) runs on the same store directory.
var ErrStoreInUse = errors.New("budget: store directory in use by another process")

// storeLockName is the lock file in the store directory. JetStream does not
// lock its store: two servers on one directory each took the other's
// records for their own (two bidders granted leases from one pool without
// seeing each other) and wrote over each other's blocks.
const storeLockName = "openbidder.lock"

// storeLockWait is how long lockStoreDir waits for a lock held elsewhere: a
// server of this process shut down a moment ago releases it in passing.
const storeLockWait = 2 * time.Second

// lockStoreDir takes an exclusive advisory lock (flock) on dir's lock file,
// creating dir; the lock lasts until the returned file is closed (or the
// process exits).
func lockStoreDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("budget: store directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, storeLockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("budget: store lock: %w", err)
	}
	deadline := time.Now().Add(storeLockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return f, nil
		case !errors.Is(err, syscall.EWOULDBLOCK):
			f.Close()
			return nil, fmt.Errorf("budget: store lock: %w", err)
		case time.Now().After(deadline):
			f.Close()
			return nil, fmt.Errorf("%w: %s (%s is locked)", ErrStoreInUse, dir, storeLockName)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
