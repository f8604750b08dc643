package shim

import (
	"bytes"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// TestFdPassing sends a pipe's write end with a message that is followed
// at once by a second one, and checks the receiver gets the descriptor, the
// first line, and the second message's bytes as rest.
func TestFdPassing(t *testing.T) {
	a, b, err := unixPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if err := sendFds(a, []byte("{\"streams\":[\"stdin\"]}\n"), pw); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if _, err := a.Write([]byte("{\"exited\":true}\n")); err != nil {
		t.Fatal(err)
	}
	line, rest, files, err := recvLine(b, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(line) != `{"streams":["stdin"]}` || len(files) != 1 {
		t.Fatalf("line %q, %d files", line, len(files))
	}
	more, _ := io.ReadAll(io.LimitReader(io.MultiReader(bytes.NewReader(rest), b), int64(len("{\"exited\":true}\n"))))
	if string(more) != "{\"exited\":true}\n" {
		t.Fatalf("second message %q", more)
	}
	// The received descriptor is the pipe's write end.
	if _, err := files[0].Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	files[0].Close()
	got, _ := io.ReadAll(pr)
	if string(got) != "x" {
		t.Fatalf("pipe read %q", got)
	}
}

func unixPair() (*net.UnixConn, *net.UnixConn, error) {
	parent, child, err := consoleSocket()
	if err != nil {
		return nil, nil, err
	}
	defer child.Close()
	fc, err := net.FileConn(child)
	if err != nil {
		parent.Close()
		return nil, nil, err
	}
	return parent, fc.(*net.UnixConn), nil
}
