package sandbox

import (
	"errors"
	"io/fs"
	"sync"

	"golang.org/x/sys/unix"
)

// readFn reads one small kernel file into buf and returns the bytes read,
// which live in buf: readFile opens it each time, openFiles.source keeps
// it open.
type readFn func(path string, buf *[]byte) ([]byte, error)

// openFiles keeps the cgroup files that the stats lists read open from one
// list to the next, and reads them again with pread at offset 0. A list of
// 500 containers reads some 3,000 cgroup files; perf put the open and close
// of each (a kernfs path walk with a revalidate per component, then the
// file's setup and teardown) at 70% of the list's syscall time, the read
// itself at 30%. A seq_file read at offset 0 starts over (seq_read_iter
// resets its iterator), so each pread is a fresh figure.
//
// The files are grouped by the stats key of their object ("c/<id>",
// "p/<id>"), and a group is closed when its container or pod stops or
// goes (Manager.forgetStats, statsCache.prune). Until then the open files
// keep nothing alive that rmdir needs: the cgroup is removed with them
// open, and a read after that fails with ENODEV, which reads as gone. They
// pin only the removed cgroup's kernel memory, until the group is closed.
//
// At most limit files stay open (half the soft RLIMIT_NOFILE, which Go
// raises to the hard limit at start): past it a file is opened for one
// read, as before, so a dense node never runs the daemon out of fds.
type openFiles struct {
	mu     sync.Mutex
	groups map[string]*fileGroup
	n      int // files open in all groups
	limit  int
}

// fileGroup is one object's open files. Its lock is held across a read,
// so a close never frees an fd number another goroutine is reading (the
// kernel would hand it to the next open). Within a list each object is
// read by one worker, so the lock is contended only by concurrent lists.
type fileGroup struct {
	mu     sync.Mutex
	fds    map[string]int // path -> fd
	closed bool
}

func newOpenFiles() *openFiles {
	var rl unix.Rlimit
	limit := 512
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur/2 > uint64(limit) {
		limit = int(min(rl.Cur/2, 1<<20))
	}
	return &openFiles{groups: map[string]*fileGroup{}, limit: limit}
}

// source returns the readFn of object key's files; with o nil, or no key,
// every read opens its file.
func (o *openFiles) source(key string) readFn {
	if o == nil || key == "" {
		return readFile
	}
	o.mu.Lock()
	g := o.groups[key]
	if g == nil {
		g = &fileGroup{fds: map[string]int{}}
		o.groups[key] = g
	}
	o.mu.Unlock()
	return func(path string, buf *[]byte) ([]byte, error) { return o.read(g, path, buf) }
}

func (o *openFiles) read(g *fileGroup, path string, buf *[]byte) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	fd, ok := g.fds[path]
	if !ok {
		if g.closed || !o.take() {
			return readFile(path, buf)
		}
		var err error
		if fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			o.give(1)
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		g.fds[path] = fd
	}
	b, err := pread0(fd, buf)
	if err != nil {
		// ENODEV: the cgroup was removed under the open file. The
		// group's other files went with it; they are opened again only
		// if the object is read again (a new cgroup under the same
		// name would need new files anyway).
		g.closeLocked(o)
		if errors.Is(err, unix.ENODEV) {
			err = unix.ENOENT
		}
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	return b, nil
}

// pread0 reads the whole file from offset 0 in one pread: a cgroup file is
// one seq_file record, which a single read returns whole when it fits, so
// a short read is the end. A full buffer is grown and the read made again.
func pread0(fd int, buf *[]byte) ([]byte, error) {
	b := (*buf)[:cap(*buf)]
	if len(b) == 0 {
		b = make([]byte, 4096)
	}
	for {
		n, err := unix.Pread(fd, b, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n < len(b) {
			*buf = b[:0]
			return b[:n], nil
		}
		b = make([]byte, 2*len(b))
	}
}

func (o *openFiles) take() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n >= o.limit {
		return false
	}
	o.n++
	return true
}

func (o *openFiles) give(n int) {
	o.mu.Lock()
	o.n -= n
	o.mu.Unlock()
}

// closeLocked closes the group's files; g.mu is held.
func (g *fileGroup) closeLocked(o *openFiles) {
	for p, fd := range g.fds {
		_ = unix.Close(fd)
		delete(g.fds, p)
		o.give(1)
	}
}

// forget closes object key's files and drops its group; a reader that
// still holds the group reads with an open each time.
func (o *openFiles) forget(key string) {
	if o == nil {
		return
	}
	o.mu.Lock()
	g := o.groups[key]
	delete(o.groups, key)
	o.mu.Unlock()
	if g == nil {
		return
	}
	g.mu.Lock()
	g.closed = true
	g.closeLocked(o)
	g.mu.Unlock()
}

// keys returns the keys that have a group, for pruning.
func (o *openFiles) keys() []string {
	if o == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	ks := make([]string, 0, len(o.groups))
	for k := range o.groups {
		ks = append(ks, k)
	}
	return ks
}

// open reports how many files are open in all groups, for tests.
func (o *openFiles) open() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}
