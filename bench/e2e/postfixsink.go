package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// startPostfixSink runs Postfix's smtp-sink (the program at path) on a
// free loopback port as the benchmark's relay, and counts the messages it
// receives from its running counters (-c): a C sink built for this job
// takes a fraction of the CPU the in-process Go sink does on the two cores
// the benchmark shares. It cannot count bytes: WireBytes stays 0.
func startPostfixSink(ctx context.Context, path string) (*sink, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"-c"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody") // smtp-sink refuses to run as root without it
	}
	cmd := exec.Command(path, append(args, addr, "1024")...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	s := &sink{addr: mustTCPAddr(addr), stop: func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }}
	go s.followCounters(out)
	if err := waitListening(ctx, addr, 10*time.Second); err != nil {
		s.close()
		return nil, fmt.Errorf("%s on %s: %w", path, addr, err)
	}
	return s, nil
}

// followCounters reads smtp-sink's counter lines ("sess=N quit=N
// mesg=N", each ended by a carriage return) and counts every new message.
func (s *sink) followCounters(r interface{ Read([]byte) (int, error) }) {
	sc := bufio.NewScanner(r)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	var last int64
	for sc.Scan() {
		_, after, ok := bytes.Cut(sc.Bytes(), []byte("mesg="))
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(string(bytes.Fields(after)[0]), 10, 64)
		if err != nil {
			continue
		}
		for ; last < n; last++ {
			s.accepted(0)
		}
	}
}

// waitListening dials addr until it answers or timeout passes.
func waitListening(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustTCPAddr(addr string) *net.TCPAddr {
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		panic(err)
	}
	return a
}
