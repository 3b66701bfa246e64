package storage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// Client runs the grid clients against a proxy with one bearer token.
type Client struct {
	// Token is the bearer token; "" sends none.
	Token string
	// CertDir trusts the proxy's certificate (Proxy.CertDir).
	CertDir string
	// Home is a scratch directory (HOME for gfal2's configuration).
	Home string
}

// Result is one client command's outcome.
type Result struct {
	// Cmd is the command line, with the token replaced by "$TOKEN".
	Cmd string
	// Code is the exit code (0 success).
	Code int
	// Output is stdout and stderr, token redacted.
	Output string
	// Requests are the HTTP requests the client reported sending
	// ("PROPFIND /data/f"), when it was asked to trace them.
	Requests []string
	// Statuses are the HTTP status lines it reported receiving, in order.
	Statuses []int
}

// OK reports a zero exit code.
func (r Result) OK() bool { return r.Code == 0 }

func (r Result) String() string {
	return fmt.Sprintf("%s → exit %d, requests %v, statuses %v", r.Cmd, r.Code, r.Requests, r.Statuses)
}

// DavixPut uploads local to url (davix-put); extra headers come as
// "Name: value".
func (c Client) DavixPut(ctx context.Context, local, url string, headers ...string) Result {
	return c.davix(ctx, "davix-put", headers, local, url)
}

// DavixGet downloads url to local (davix-get).
func (c Client) DavixGet(ctx context.Context, url, local string) Result {
	return c.davix(ctx, "davix-get", nil, url, local)
}

// DavixLs lists url (davix-ls, PROPFIND Depth: 1).
func (c Client) DavixLs(ctx context.Context, url string) Result {
	return c.davix(ctx, "davix-ls", nil, url)
}

// DavixMkdir makes a collection (davix-mkdir, MKCOL).
func (c Client) DavixMkdir(ctx context.Context, url string) Result {
	return c.davix(ctx, "davix-mkdir", nil, url)
}

// DavixRm deletes url (davix-rm, DELETE).
func (c Client) DavixRm(ctx context.Context, url string) Result {
	return c.davix(ctx, "davix-rm", nil, url)
}

// GfalCopy copies src to dst (gfal-copy; file:// for local files).
func (c Client) GfalCopy(ctx context.Context, src, dst string, flags ...string) Result {
	return c.gfal(ctx, "gfal-copy", append(flags, src, dst)...)
}

// GfalLs lists url (gfal-ls).
func (c Client) GfalLs(ctx context.Context, url string) Result {
	return c.gfal(ctx, "gfal-ls", url)
}

// GfalRm deletes url (gfal-rm).
func (c Client) GfalRm(ctx context.Context, url string) Result {
	return c.gfal(ctx, "gfal-rm", url)
}

func (c Client) davix(ctx context.Context, tool string, headers []string, args ...string) Result {
	// No retries: a refusal is an answer, and each retry would be one more
	// issuer call for a window-0 request. --trace header prints the
	// request and status lines.
	full := []string{"--retry", "0", "--trace", "header", "--capath", c.CertDir}
	if c.Token != "" {
		full = append(full, "-H", "Authorization: Bearer "+c.Token)
	}
	for _, h := range headers {
		full = append(full, "-H", h)
	}
	return c.run(ctx, tool, append(full, args...), nil)
}

func (c Client) gfal(ctx context.Context, tool string, args ...string) Result {
	// gfal2 reads the token from BEARER_TOKEN (WLCG bearer token
	// discovery) and prints Davix's request lines with -vvv.
	env := []string{"X509_CERT_DIR=" + c.CertDir}
	if c.Token != "" {
		env = append(env, "BEARER_TOKEN="+c.Token)
	}
	if py := pythonForGfal(); py != "" {
		env = append(env, "GFAL_PYTHONBIN="+py)
	}
	return c.run(ctx, tool, append([]string{"-vvv", "-t", "60"}, args...), env)
}

var (
	requestLine = regexp.MustCompile(`(?m)^(?:INFO Davix: )?> ([A-Z]+) (\S+) HTTP/1\.1`)
	statusLine  = regexp.MustCompile(`(?m)^(?:INFO Davix: )?< HTTP/1\.1 (\d{3})`)
)

func (c Client) run(ctx context.Context, tool string, args, env []string) Result {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	bin, err := lookPath(tool)
	if err != nil {
		return Result{Cmd: tool, Code: -1, Output: err.Error()}
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.Home, "LANG=C"}, env...)
	cmd.Dir = c.Home
	out, err := cmd.CombinedOutput()
	res := Result{Cmd: c.redact(tool + " " + strings.Join(args, " ")), Output: c.redact(string(out))}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	} else if err != nil {
		res.Code = -1
		res.Output += "\n" + err.Error()
	}
	for _, m := range requestLine.FindAllStringSubmatch(res.Output, -1) {
		res.Requests = append(res.Requests, m[1]+" "+m[2])
	}
	for _, m := range statusLine.FindAllStringSubmatch(res.Output, -1) {
		var code int
		fmt.Sscan(m[1], &code)
		if code != 100 {
			res.Statuses = append(res.Statuses, code)
		}
	}
	return res
}

func (c Client) redact(s string) string {
	if c.Token == "" {
		return s
	}
	return strings.ReplaceAll(s, c.Token, "$TOKEN")
}
