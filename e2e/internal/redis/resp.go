package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// Conn is a minimal RESP2 client on one connection, enough for the harness
// to inspect and poke a server (PING, CONFIG, SCAN, DUMP, XRANGE, CLIENT
// KILL, CLUSTER INFO). Simple and bulk strings come back as string (a Go
// string holds DUMP's binary output as is). Safe for concurrent use (one
// command at a time).
type Conn struct {
	mu sync.Mutex
	nc net.Conn
	rd *bufio.Reader
}

// Error is a Redis error reply (-ERR …).
type Error string

func (e Error) Error() string { return "redis: " + string(e) }

// ErrNil is the nil bulk or nil array reply.
var ErrNil = errors.New("redis: nil reply")

// Dial connects to addr (host:port).
func Dial(ctx context.Context, addr string) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("redis: dial %s: %w", addr, err)
	}
	return &Conn{nc: nc, rd: bufio.NewReader(nc)}, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// Do sends one command and reads its reply: string, int64, []any, nil (a
// nil reply), or an Error. ctx's deadline (default 10 s) bounds the round
// trip.
func (c *Conn) Do(ctx context.Context, args ...string) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(10 * time.Second)
	}
	_ = c.nc.SetDeadline(dl)
	buf := make([]byte, 0, 64)
	buf = append(buf, '*')
	buf = strconv.AppendInt(buf, int64(len(args)), 10)
	buf = append(buf, '\r', '\n')
	for _, a := range args {
		buf = append(buf, '$')
		buf = strconv.AppendInt(buf, int64(len(a)), 10)
		buf = append(buf, '\r', '\n')
		buf = append(buf, a...)
		buf = append(buf, '\r', '\n')
	}
	if _, err := c.nc.Write(buf); err != nil {
		return nil, fmt.Errorf("redis: write %s: %w", args[0], err)
	}
	v, err := readReply(c.rd)
	if err != nil {
		return nil, fmt.Errorf("redis: %s: %w", args[0], err)
	}
	if e, ok := v.(Error); ok {
		return nil, e
	}
	return v, nil
}

// String runs Do and wants a string reply.
func (c *Conn) String(ctx context.Context, args ...string) (string, error) {
	v, err := c.Do(ctx, args...)
	if err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case nil:
		return "", ErrNil
	}
	return "", fmt.Errorf("redis: %s: want a string, got %T", args[0], v)
}

func readReply(rd *bufio.Reader) (any, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("bad reply line %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return Error(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(rd, b); err != nil {
			return nil, err
		}
		return string(b[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readReply(rd); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown reply type %q", kind)
}
