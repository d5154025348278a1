package client

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// writeUserFile replaces dir/name with data, mode 0644, owned by uid:gid,
// on behalf of that local user, without following a symbolic link
// anywhere they could plant one: dir itself must not be a link, must
// belong to uid and must not be writable by others; the file is written
// under a fresh name created exclusively in that directory (by its
// descriptor, so the directory cannot be swapped half-way), handed to the
// user, synced and renamed over name, which replaces a link there instead
// of following it. The daemon runs as root: without these, a user could
// have it write into a directory of someone else's.
func writeUserFile(dir, name string, uid, gid uint32, data []byte) (err error) {
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR):
		// Linux says ENOTDIR for a link to a directory: tell them apart
		// for the message only.
		if fi, lerr := os.Lstat(dir); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link: give the key's path in its real directory", dir)
		}
		return fmt.Errorf("%s is not a directory", dir)
	case err != nil:
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil {
		return fmt.Errorf("checking %s: %w", dir, err)
	}
	if st.Uid != uid {
		return fmt.Errorf("%s belongs to uid %d, not to the caller (uid %d): certificates are written only into the caller's own directories", dir, st.Uid, uid)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("%s is writable by other users (mode %04o): chmod go-w %s", dir, st.Mode&0o7777, dir)
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := "." + name + ".tmp-" + hex.EncodeToString(rnd[:])
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("creating a file in %s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	defer func() {
		if err != nil {
			f.Close()
			unix.Unlinkat(dfd, tmp, 0)
		}
	}()
	if err := unix.Fchown(fd, int(uid), int(gid)); err != nil {
		return fmt.Errorf("handing %s/%s to uid %d: %w", dir, name, uid, err)
	}
	if err := unix.Fchmod(fd, 0o644); err != nil {
		return fmt.Errorf("writing %s/%s: %w", dir, name, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s/%s: %w", dir, name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s/%s: %w", dir, name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s/%s: %w", dir, name, err)
	}
	if err := unix.Renameat(dfd, tmp, dfd, name); err != nil {
		return fmt.Errorf("writing %s/%s: %w", dir, name, err)
	}
	// The certificate is in place; only its durability is in doubt.
	_ = unix.Fsync(dfd)
	return nil
}
