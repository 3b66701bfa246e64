package redis

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// Proxy is a TCP proxy on a free loopback port in front of one Redis
// server. BlackHole makes it stop forwarding in both directions without
// closing anything — the client's sockets stay open and its writes are
// read and dropped, so the client sees a hung server, not a refused or
// reset connection (a partition, not a crash). New connections are
// accepted and black-holed too. Heal resumes forwarding on the open
// connections (bytes dropped meanwhile stay lost, as on a real
// partition; the client will have timed out on them) and on new ones.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	holed  bool
	healed chan struct{} // closed by Heal
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewProxy listens on 127.0.0.1:0 and forwards to target (host:port).
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("redis: proxy: %w", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, healed: make(chan struct{})}
	close(p.healed)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port, to give the client instead of the
// server's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// BlackHole stops forwarding (idempotent).
func (p *Proxy) BlackHole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.holed {
		p.holed = true
		p.healed = make(chan struct{})
	}
}

// Heal resumes forwarding (idempotent).
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holed {
		p.holed = false
		close(p.healed)
	}
}

// BlackHoled reports whether the proxy is dropping bytes.
func (p *Proxy) BlackHoled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.holed
}

// Conns is the number of client connections open through the proxy.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	if p.holed {
		p.holed = false
		close(p.healed)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

// gate returns nil when bytes may flow, else a channel closed on Heal.
func (p *Proxy) gate() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holed {
		return p.healed
	}
	return nil
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			// While black-holed, hold the client without dialing: a real
			// partition would not let the dial through either.
			for {
				ch := p.gate()
				if ch == nil {
					break
				}
				if !p.track(client) {
					return
				}
				<-ch
				p.mu.Lock()
				delete(p.conns, client)
				closed := p.closed
				p.mu.Unlock()
				if closed {
					client.Close()
					return
				}
			}
			server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
			if err != nil {
				client.Close()
				return
			}
			if !p.track(client) || !p.track(server) {
				client.Close()
				server.Close()
				return
			}
			var once sync.Once
			done := func() { once.Do(func() { p.untrack(client); p.untrack(server) }) }
			p.wg.Add(2)
			go func() { defer p.wg.Done(); p.pipe(server, client); done() }()
			go func() { defer p.wg.Done(); p.pipe(client, server); done() }()
		}()
	}
}

// pipe copies src to dst; while black-holed it keeps reading src (so the
// sender's writes succeed and its buffers never fill) and drops the bytes.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.gate() == nil {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // EOF, reset, or Close
			return
		}
	}
}
