package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/streaming/pkg/httpstream"
)

// portMapping is one LOCAL:REMOTE argument; local 0 picks a free port.
type portMapping struct {
	local, remote uint16
}

// parsePortMapping reads REMOTE (the same port locally), LOCAL:REMOTE, or
// :REMOTE / 0:REMOTE (a free local port).
func parsePortMapping(s string) (portMapping, error) {
	localS, remoteS, hasLocal := strings.Cut(s, ":")
	if !hasLocal {
		// REMOTE alone: the same port number locally.
		remoteS = localS
	}
	remote, err := strconv.ParseUint(remoteS, 10, 16)
	if err != nil || remote == 0 {
		return portMapping{}, fmt.Errorf("port mapping %q: remote port %q is not a port 1-65535", s, remoteS)
	}
	var local uint64
	if localS != "" {
		if local, err = strconv.ParseUint(localS, 10, 16); err != nil {
			return portMapping{}, fmt.Errorf("port mapping %q: local port %q is not a port 0-65535", s, localS)
		}
	}
	return portMapping{local: uint16(local), remote: uint16(remote)}, nil
}

func portForwardCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "port-forward POD [LOCAL:]REMOTE...",
		Short: "Forward local ports to ports of a pod",
		Long: `Forward TCP connections on 127.0.0.1 (only: nothing is exposed beyond this
host's loopback) to ports of a pod, through CRI PortForward and the
runtime's streaming server, as kubectl port-forward does. The runtime dials
the port on the pod's loopback inside its network namespace. POD is an ID,
a unique ID prefix, a name or namespace/name.

Each mapping is LOCAL:REMOTE, REMOTE (the same port number locally) or
:REMOTE (a free local port, printed). husk prints one "Forwarding from"
line per mapping once it listens, and runs until Ctrl-C or until the
runtime ends the session (the pod was stopped, the runtime restarted).`,
		Example: `  husk port-forward web 8080:80
  husk port-forward web :80          # prints the local port it chose
  husk port-forward default/db 5432 9187:9187`,
		Args:              cobra.MinimumNArgs(2),
		ValidArgsFunction: completePods,
		RunE: func(cmd *cobra.Command, args []string) error {
			var maps []portMapping
			for _, a := range args[1:] {
				m, err := parsePortMapping(a)
				if err != nil {
					return err
				}
				maps = append(maps, m)
			}
			c, err := dial(10 * time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			pod, err := c.FindPod(ctx, args[0])
			if err != nil {
				return err
			}
			name := fmt.Sprintf("pod %s (%s)", pod.GetMetadata().GetName(), criclient.ShortID(pod.Id))
			// Listen before asking for the URL: a port already in use is
			// reported without using up a token.
			var ls []net.Listener
			defer func() {
				for _, l := range ls {
					l.Close()
				}
			}()
			for _, m := range maps {
				l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(m.local))))
				if err != nil {
					return fmt.Errorf("port-forward to %s: listen on 127.0.0.1:%d: %w", name, m.local, err)
				}
				ls = append(ls, l)
			}
			ports := make([]int32, len(maps))
			for i, m := range maps {
				ports[i] = int32(m.remote)
			}
			pctx, cancel := c.Ctx(ctx)
			resp, err := c.Runtime.PortForward(pctx, &runtimeapi.PortForwardRequest{PodSandboxId: pod.Id, Port: ports})
			cancel()
			if err != nil {
				return criclient.Wrap(err, "port-forward to %s", name)
			}
			conn, err := criclient.DialStream(ctx, resp.Url, criclient.PortForwardV1)
			if err != nil {
				return fmt.Errorf("port-forward to %s: %w", name, err)
			}
			defer conn.Close()
			for i, l := range ls {
				fmt.Printf("Forwarding from %s -> %d\n", l.Addr(), maps[i].remote)
			}
			return forwardPorts(ctx, conn, ls, maps, name)
		},
	}
	return cmd
}

// forwardPorts serves the listeners over one streaming connection until
// ctx ends (nil) or the connection closes (an error: the forward is gone).
func forwardPorts(ctx context.Context, conn httpstream.Connection, ls []net.Listener, maps []portMapping, name string) error {
	var reqID atomic.Int64
	var wg sync.WaitGroup
	for i, l := range ls {
		remote := maps[i].remote
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				local, err := l.Accept()
				if err != nil {
					return // closed: husk is stopping
				}
				id := int(reqID.Add(1))
				go func() {
					if err := criclient.ForwardConn(conn, id, remote, local); err != nil {
						fmt.Fprintf(os.Stderr, "husk: port-forward %s -> %s port %d: %v\n", local.RemoteAddr(), name, remote, err)
					}
				}()
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case <-conn.CloseChan():
		err = errors.New("the runtime closed the connection (pod stopped or runtime restarted?)")
	}
	for _, l := range ls {
		l.Close()
	}
	wg.Wait()
	if err != nil {
		return fmt.Errorf("port-forward to %s: %w", name, err)
	}
	return nil
}
