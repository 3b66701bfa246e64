package redis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Cluster is a Redis Cluster of masters only, each a Server in its own
// subdirectory.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts n (≥ 3) cluster-enabled nodes under dir, joins them
// with `redis-cli --cluster create … --cluster-replicas 0 --cluster-yes`
// and waits until every node reports cluster_state:ok.
func StartCluster(ctx context.Context, dir string, n int) (*Cluster, error) {
	if n < 3 {
		return nil, errors.New("redis: a Cluster needs at least 3 masters")
	}
	cli, err := CLI()
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	for i := range n {
		d := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			c.Close()
			return nil, err
		}
		s, err := Start(ctx, Options{Dir: d, Cluster: true})
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Nodes = append(c.Nodes, s)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, cli, args...).CombinedOutput()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("redis: redis-cli --cluster create: %w: %s", err, out)
	}
	if err := c.WaitOK(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Addrs are the nodes' host:port addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr()
	}
	return out
}

// WaitOK waits (up to 30 s) until every node answers CLUSTER INFO with
// cluster_state:ok and sees all the others.
func (c *Cluster) WaitOK(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last string
	for {
		ok := true
		for _, s := range c.Nodes {
			v, err := s.Do(ctx, "CLUSTER", "INFO")
			str, _ := v.(string)
			if err != nil || !strings.Contains(str, "cluster_state:ok") ||
				!strings.Contains(str, "cluster_known_nodes:"+strconv.Itoa(len(c.Nodes))+"\r\n") {
				ok, last = false, fmt.Sprintf("%s: %v %q", s.Addr(), err, str)
				break
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis: cluster not ok: %w (last: %s)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close kills every node.
func (c *Cluster) Close() {
	for _, s := range c.Nodes {
		s.Close()
	}
}
