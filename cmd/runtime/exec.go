package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func execCmd() *cobra.Command {
	var interactive, tty, sync bool
	var execTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "exec [flags] CONTAINER -- COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Long: `Run a command in a running container; husk exec exits with the command's
exit code. CONTAINER is an ID, a unique ID prefix, a name or pod/name.

The command runs through CRI Exec and the runtime's streaming server, as
kubectl exec and crictl exec do: its stdout and stderr are live. With -i
stdin is sent to the command; with -t on a terminal the local terminal is
put in raw mode (restored on exit) and its size follows the local window (a
terminal has one output stream, so the command's stderr arrives on stdout).
With --sync, or --exec-timeout, it runs through CRI ExecSync instead: its
output is printed when it ends, and the runtime kills it after the timeout.`,
		Example: `  husk exec web -- cat /etc/resolv.conf
  husk exec web -- tail -f /var/log/app.log
  husk exec --exec-timeout 5s web-pod/client -- wget -q -O - http://127.0.0.1:8080/
  echo hello | husk exec -i web -- cat
  husk exec -it web -- sh`,
		Args:              cobra.MinimumNArgs(2),
		ValidArgsFunction: completeContainers(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return errors.New("usage: husk exec CONTAINER -- COMMAND [ARG...]")
			}
			sync = sync || execTimeout > 0
			if (interactive || tty) && sync {
				return errors.New("--sync and --exec-timeout apply to exec without -i/-t only")
			}
			// The call lasts as long as the command: no default deadline.
			c, err := dial(0)
			if err != nil {
				return err
			}
			defer c.Close()
			ct, err := c.FindContainer(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			what := fmt.Sprintf("exec in container %s (%s)", ct.GetMetadata().GetName(), criclient.ShortID(ct.Id))
			if !sync {
				term := newLocalTerminal(interactive, tty)
				ctx, cancel := c.Ctx(cmd.Context())
				resp, err := c.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: ct.Id, Cmd: args[1:],
					Tty: term.tty, Stdin: interactive, Stdout: true, Stderr: !term.tty})
				cancel()
				if err != nil {
					return criclient.Wrap(err, "%s", what)
				}
				code, err := term.run(cmd.Context(), resp.Url)
				if err != nil {
					return fmt.Errorf("%s: %w", what, err)
				}
				exitWith(c, code)
				return nil
			}
			ctx, cancel := c.Ctx(cmd.Context())
			defer cancel()
			resp, err := c.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ct.Id, Cmd: args[1:], Timeout: int64(execTimeout.Seconds())})
			if err != nil {
				return criclient.Wrap(err, "%s", what)
			}
			_, _ = os.Stdout.Write(resp.Stdout)
			_, _ = os.Stderr.Write(resp.Stderr)
			exitWith(c, int(resp.ExitCode))
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&interactive, "interactive", "i", false, "keep stdin open and send it to the command")
	f.BoolVarP(&tty, "tty", "t", false, "allocate a terminal for the command")
	f.BoolVarP(&sync, "sync", "s", false, "run through ExecSync: output when the command ends (without -i/-t only)")
	f.DurationVar(&execTimeout, "exec-timeout", 0, "kill the command after this long (whole seconds; implies --sync; 0: no limit)")
	return cmd
}

// exitWith ends husk with the command's status when it is not 0: the
// command's status is husk exec's, as with crictl and kubectl, so scripts
// can test it.
func exitWith(c *criclient.Client, code int) {
	if code == 0 {
		return
	}
	c.Close()
	os.Exit(code)
}

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
