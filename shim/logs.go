package shim

import (
	"bufio"
	"errors"
	"io"
	"os"
	"sync"
	"time"
)

// maxLogLine is where a line is cut into partial records, as containerd
// does; kubelet joins the P records back together.
const maxLogLine = 16 * 1024

// logWriter writes the CRI log format that kubelet and crictl read:
// "<RFC3339Nano> <stream> <F|P> <content>\n". Both streams share one file, so
// records are written whole under a lock.
type logWriter struct {
	mu   sync.Mutex
	f    *os.File
	path string
}

func openLog(path string) (*logWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	return &logWriter{f: f, path: path}, nil
}

// reopen swaps in a new file at the log's path; on failure the old file
// stays in use and nothing new is created.
func (w *logWriter) reopen() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	w.mu.Lock()
	old := w.f
	w.f = f
	w.mu.Unlock()
	return old.Close()
}

func (w *logWriter) record(stream string, partial bool, content []byte) {
	tag := " F "
	if partial {
		tag = " P "
	}
	buf := make([]byte, 0, len(content)+48)
	buf = time.Now().UTC().AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, ' ')
	buf = append(buf, stream...)
	buf = append(buf, tag...)
	buf = append(buf, content...)
	buf = append(buf, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	// A write error (disk full) loses the record but must not stop the
	// copy: a blocked pipe would stall the container.
	_, _ = w.f.Write(buf)
}

func (w *logWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// copyLog reads one stream until EOF and writes it as CRI records.
func copyLog(w *logWriter, stream string, r io.Reader) {
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			w.record(stream, false, line[:len(line)-1])
		case errors.Is(err, bufio.ErrBufferFull):
			w.record(stream, true, line)
		default:
			// EOF (or a read error): a last line without its newline is a
			// partial record, as containerd writes it. kubelet ends every
			// F record with a newline when it reads the log back, so an F
			// here would turn `echo -n DONE` into a termination message of
			// "DONE\n" (the node e2e FallbackToLogsOnError spec).
			if len(line) > 0 {
				w.record(stream, true, line)
			}
			return
		}
	}
}
