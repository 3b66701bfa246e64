package leasegate

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Client calls leasegate's ext_authz v3 gRPC service the way Envoy does.
type Client struct {
	conn   *grpc.ClientConn
	authz  authv3.AuthorizationClient
	health healthpb.HealthClient
}

// Dial connects to addr (host:port) without TLS. The connection is lazy;
// the first Check dials.
func Dial(addr string) (*Client, error) {
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("leasegate: dial %s: %w", addr, err)
	}
	return &Client{conn: conn, authz: authv3.NewAuthorizationClient(conn), health: healthpb.NewHealthClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Request is one HTTP request as Envoy describes it in a CheckRequest.
type Request struct {
	Method string
	Path   string
	Host   string // :authority; default "storage.example.org"
	// Token, when not empty, is sent as "authorization: Bearer <Token>".
	Token string
	// Headers are extra request headers (names are lower-cased, as Envoy
	// does).
	Headers map[string]string
	// HeaderMap sends the headers only as attributes.request.http.header_map
	// with raw_value, as Envoy does with encode_raw_headers: true.
	HeaderMap bool
	// RequestID is the x-request-id; a random one when empty.
	RequestID string
	// Metadata is gRPC request metadata, e.g. "traceparent".
	Metadata map[string]string
	// ContextExtensions are the route's ext_authz context_extensions.
	ContextExtensions map[string]string
}

// Result is leasegate's answer.
type Result struct {
	Code       codes.Code        // CheckResponse.status.code
	HTTPStatus int               // 200 when allowed, else the denial's status
	Headers    map[string]string // upstream headers when allowed, response headers when denied
	Removed    []string          // headers_to_remove when allowed
	Body       string            // denial body
	Metadata   map[string]string // dynamic_metadata (tier, lease, reason, sub, …)
	Latency    time.Duration     // round trip of the Check call
}

// Allowed reports an OK status.
func (r Result) Allowed() bool { return r.Code == codes.OK }

// Lease is the lease outcome leasegate reported (hit, miss, stale,
// negative, none).
func (r Result) Lease() string { return r.Metadata["lease"] }

// Tier is the tier leasegate chose.
func (r Result) Tier() string { return r.Metadata["tier"] }

func (r Result) String() string {
	return fmt.Sprintf("code=%v http=%d tier=%s lease=%s reason=%s", r.Code, r.HTTPStatus, r.Tier(), r.Lease(), r.Metadata["reason"])
}

// Check sends one Envoy-shaped CheckRequest. A transport or gRPC error is
// returned as an error; a denial is a Result.
func (c *Client) Check(ctx context.Context, r Request) (Result, error) {
	req := BuildCheckRequest(r)
	if len(r.Metadata) > 0 {
		kv := make([]string, 0, 2*len(r.Metadata))
		for k, v := range r.Metadata {
			kv = append(kv, k, v)
		}
		ctx = metadata.AppendToOutgoingContext(ctx, kv...)
	}
	start := time.Now()
	resp, err := c.authz.Check(ctx, req)
	lat := time.Since(start)
	if err != nil {
		return Result{}, fmt.Errorf("leasegate: Check: %w", err)
	}
	res := Result{
		Code:     codes.Code(resp.GetStatus().GetCode()),
		Headers:  map[string]string{},
		Metadata: map[string]string{},
		Latency:  lat,
	}
	for k, v := range resp.GetDynamicMetadata().GetFields() {
		res.Metadata[k] = v.GetStringValue()
	}
	switch hr := resp.GetHttpResponse().(type) {
	case *authv3.CheckResponse_OkResponse:
		res.HTTPStatus = http.StatusOK
		for _, h := range hr.OkResponse.GetHeaders() {
			res.Headers[strings.ToLower(h.GetHeader().GetKey())] = h.GetHeader().GetValue()
		}
		res.Removed = hr.OkResponse.GetHeadersToRemove()
	case *authv3.CheckResponse_DeniedResponse:
		res.HTTPStatus = int(hr.DeniedResponse.GetStatus().GetCode())
		for _, h := range hr.DeniedResponse.GetHeaders() {
			res.Headers[strings.ToLower(h.GetHeader().GetKey())] = h.GetHeader().GetValue()
		}
		res.Body = hr.DeniedResponse.GetBody()
	}
	if res.Code == codes.OK && res.HTTPStatus == 0 {
		res.HTTPStatus = http.StatusOK
	}
	return res, nil
}

// Serving asks grpc.health.v1 about service ("" for the server) and
// reports whether the answer is SERVING.
func (c *Client) Serving(ctx context.Context, service string) (bool, error) {
	resp, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return false, fmt.Errorf("leasegate: health check: %w", err)
	}
	return resp.GetStatus() == healthpb.HealthCheckResponse_SERVING, nil
}

// BuildCheckRequest shapes r as Envoy's ext_authz filter does: lower-case
// header keys including the pseudo-headers :method, :path, :authority and
// :scheme, x-request-id, peer addresses and a request time.
func BuildCheckRequest(r Request) *authv3.CheckRequest {
	host := cmp.Or(r.Host, "storage.example.org")
	id := r.RequestID
	if id == "" {
		id = randomID()
	}
	hdrs := map[string]string{
		":method":           r.Method,
		":path":             r.Path,
		":authority":        host,
		":scheme":           "http",
		"x-request-id":      id,
		"user-agent":        "leasegate-e2e/1",
		"x-forwarded-proto": "http",
	}
	if r.Token != "" {
		hdrs["authorization"] = "Bearer " + r.Token
	}
	for k, v := range r.Headers {
		hdrs[strings.ToLower(k)] = v
	}
	hr := &authv3.AttributeContext_HttpRequest{
		Id:       id,
		Method:   r.Method,
		Path:     r.Path,
		Host:     host,
		Scheme:   "http",
		Protocol: "HTTP/1.1",
	}
	if r.HeaderMap {
		hm := &corev3.HeaderMap{}
		for k, v := range hdrs {
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
		}
		hr.HeaderMap = hm
	} else {
		hr.Headers = hdrs
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:            peer("127.0.0.1", 40000),
		Destination:       peer("127.0.0.1", 8080),
		Request:           &authv3.AttributeContext_Request{Time: timestamppb.Now(), Http: hr},
		ContextExtensions: r.ContextExtensions,
	}}
}

func peer(ip string, port uint32) *authv3.AttributeContext_Peer {
	return &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
		SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}},
	}}}
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
