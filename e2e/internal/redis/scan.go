package redis

import (
	"context"
	"fmt"
	"strings"
)

// Entry is one key and everything it holds: its TYPE, its DUMP
// serialization (the whole value, any type), and the readable parts —
// GET for a string, every field and value of a hash, every member of a
// set or zset, every element of a list, every entry ID, field and value
// of a stream (XRANGE - +).
type Entry struct {
	Key   string
	Type  string
	Dump  string
	Parts []string
}

// Contains reports whether needle occurs in the key, the dump or any part.
func (e Entry) Contains(needle string) bool {
	if strings.Contains(e.Key, needle) || strings.Contains(e.Dump, needle) {
		return true
	}
	for _, p := range e.Parts {
		if strings.Contains(p, needle) {
			return true
		}
	}
	return false
}

// Scan walks every key of the server at addr (SCAN 0 … until the cursor
// is 0 again) and reads each one. On a Cluster node it sees that node's
// keys only: scan every node (Cluster.Scan).
func Scan(ctx context.Context, addr string) ([]Entry, error) {
	c, err := Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var out []Entry
	cursor := "0"
	for {
		v, err := c.Do(ctx, "SCAN", cursor, "COUNT", "1000")
		if err != nil {
			return nil, err
		}
		arr, ok := v.([]any)
		if !ok || len(arr) != 2 {
			return nil, fmt.Errorf("redis: SCAN: unexpected reply %v", v)
		}
		cursor, _ = arr[0].(string)
		keys, _ := arr[1].([]any)
		for _, k := range keys {
			key, _ := k.(string)
			e, err := readEntry(ctx, c, key)
			if err != nil {
				return nil, err
			}
			if e.Type != "none" { // expired between SCAN and TYPE
				out = append(out, e)
			}
		}
		if cursor == "0" {
			return out, nil
		}
	}
}

// Scan scans every node.
func (c *Cluster) Scan(ctx context.Context) ([]Entry, error) {
	var out []Entry
	for _, s := range c.Nodes {
		es, err := Scan(ctx, s.Addr())
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
	}
	return out, nil
}

func readEntry(ctx context.Context, c *Conn, key string) (Entry, error) {
	e := Entry{Key: key}
	var err error
	if e.Type, err = c.String(ctx, "TYPE", key); err != nil {
		return e, err
	}
	if e.Type == "none" {
		return e, nil
	}
	if e.Dump, err = c.String(ctx, "DUMP", key); err != nil && err != ErrNil {
		return e, err
	}
	var cmd []string
	switch e.Type {
	case "string":
		cmd = []string{"GET", key}
	case "hash":
		cmd = []string{"HGETALL", key}
	case "set":
		cmd = []string{"SMEMBERS", key}
	case "zset":
		cmd = []string{"ZRANGE", key, "0", "-1", "WITHSCORES"}
	case "list":
		cmd = []string{"LRANGE", key, "0", "-1"}
	case "stream":
		cmd = []string{"XRANGE", key, "-", "+"}
	default:
		return e, nil // DUMP has it all
	}
	v, err := c.Do(ctx, cmd...)
	if err != nil {
		return e, fmt.Errorf("redis: %s %q: %w", cmd[0], key, err)
	}
	e.Parts = flatten(nil, v)
	return e, nil
}

func flatten(out []string, v any) []string {
	switch v := v.(type) {
	case string:
		out = append(out, v)
	case []any:
		for _, x := range v {
			out = flatten(out, x)
		}
	}
	return out
}
