package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/husk-runtime/husk/criclient"
	"golang.org/x/term"
)

// localTerminal is the local end of an exec or attach session: husk's
// stdio, and with a terminal its raw mode and size.
type localTerminal struct {
	interactive bool
	tty         bool // ask the runtime for a terminal
	rawFd       int  // stdin's fd when it is put in raw mode, else -1
	sizeFd      int  // where the window size is read, -1 if nowhere
}

// newLocalTerminal decides how the session uses husk's stdio. A terminal
// is asked for only when there is a local one to show it on: with -i
// stdin must be a terminal (its keys are sent raw), without -i stdout.
func newLocalTerminal(interactive, tty bool) *localTerminal {
	lt := &localTerminal{interactive: interactive, rawFd: -1, sizeFd: -1}
	if !tty {
		return lt
	}
	in, out := int(os.Stdin.Fd()), int(os.Stdout.Fd())
	switch {
	case interactive && term.IsTerminal(in):
		lt.tty, lt.rawFd, lt.sizeFd = true, in, in
	case !interactive && term.IsTerminal(out):
		lt.tty, lt.sizeFd = true, out
	default:
		warnf("-t ignored: %s is not a terminal", map[bool]string{true: "stdin", false: "stdout"}[interactive])
	}
	return lt
}

// run connects to a streaming URL and runs the session, with husk's stdio
// and, when a terminal is used, raw mode and window size. It returns the
// remote command's exit code. A signal that ends husk (SIGINT and SIGQUIT
// outside raw mode, SIGTERM, SIGHUP) closes the session and restores the
// terminal before husk exits with 128+signal, as a shell reports it.
func (lt *localTerminal) run(ctx context.Context, url string) (int, error) {
	conn, err := criclient.DialStream(ctx, url, criclient.RemoteCommandV4)
	if err != nil {
		return 0, err
	}
	restore := func() {}
	if lt.rawFd >= 0 {
		old, err := term.MakeRaw(lt.rawFd)
		if err != nil {
			conn.Close()
			return 0, fmt.Errorf("put the terminal in raw mode: %w", err)
		}
		var once sync.Once
		restore = func() { once.Do(func() { _ = term.Restore(lt.rawFd, old) }) }
	}
	defer restore()

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer func() { signal.Stop(sigc); close(sigc) }()
	go func() {
		s, ok := <-sigc
		if !ok {
			return
		}
		conn.Close()
		restore()
		os.Exit(128 + int(s.(syscall.Signal)))
	}()

	rc := &criclient.RemoteCommand{Stdout: os.Stdout, Stderr: os.Stderr, TTY: lt.tty}
	if lt.interactive {
		rc.Stdin = os.Stdin
	}
	if lt.tty && lt.sizeFd >= 0 {
		sizes := make(chan criclient.TermSize, 1)
		rc.Resize = sizes
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		done := make(chan struct{})
		defer close(done)
		go followWindowSize(lt.sizeFd, winch, sizes, done)
	}
	return rc.Run(conn)
}

// followWindowSize sends the terminal's size now and after every SIGWINCH,
// keeping only the newest size when the session is slow to take it.
func followWindowSize(fd int, winch <-chan os.Signal, sizes chan criclient.TermSize, done <-chan struct{}) {
	defer close(sizes)
	send := func() {
		w, h, err := term.GetSize(fd)
		if err != nil || w <= 0 || h <= 0 {
			return
		}
		s := criclient.TermSize{Width: uint16(w), Height: uint16(h)}
		for {
			select {
			case sizes <- s:
				return
			default:
			}
			select {
			case <-sizes: // drop the stale size
			default:
			}
		}
	}
	send()
	for {
		select {
		case <-winch:
			send()
		case <-done:
			return
		}
	}
}
