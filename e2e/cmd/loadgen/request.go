package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	checkMethod = "/envoy.service.auth.v3.Authorization/Check"
	// tokenDigits is the zero-padded width of n in tok-<n>: fixed, so a
	// token can be written into a marshalled template in place.
	tokenDigits = 12
	ridLen      = 36 // x-request-id as a UUID
)

// tokenString is the bearer token of population member n; the fake issuer
// accepts any tok-<digits>.
func tokenString(n uint64) string { return fmt.Sprintf("tok-%0*d", tokenDigits, n) }

// template is a marshalled CheckRequest with slots for the token (its
// digits, or a whole token of -token-file) and the x-request-id.
type template struct {
	method string
	b      []byte
	tokOff int
	ridOff int
	tokens []string // -token-file: token n is tokens[n-base]; nil: tok-<n>
	base   uint64
}

// envoyRequest is the CheckRequest Envoy's ext_authz filter sends for a
// plain HTTPS request (headers map, no raw header_map, no body).
func envoyRequest(method, host, path, token, rid string) *authv3.CheckRequest {
	sock := func(addr string, port uint32) *authv3.AttributeContext_Peer {
		return &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}},
		}}}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      sock("10.1.2.3", 51234),
		Destination: sock("10.1.0.10", 8443),
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
			Http: &authv3.AttributeContext_HttpRequest{
				Id:       "6172863958732498113",
				Method:   method,
				Path:     path,
				Host:     host,
				Scheme:   "https",
				Protocol: "HTTP/1.1",
				Headers: map[string]string{
					":authority":        host,
					":method":           method,
					":path":             path,
					":scheme":           "https",
					"accept":            "*/*",
					"user-agent":        "libdavix/0.8.7 libcurl/8.5.0",
					"x-forwarded-proto": "https",
					"x-request-id":      rid,
					"authorization":     "Bearer " + token,
				},
			},
		},
	}}
}

func newTemplate(method, host, path string) (template, error) {
	return newTokenTemplate(method, host, path, nil, 0)
}

// newTokenTemplate is newTemplate for the tokens of a -token-file, token n
// being tokens[n-base] (all of one length); nil tokens is tok-<n>.
func newTokenTemplate(method, host, path string, tokens []string, base uint64) (template, error) {
	tokSentinel := "tok-" + strings.Repeat("Q", tokenDigits)
	if tokens != nil {
		tokSentinel = strings.Repeat("Q", len(tokens[0]))
	}
	ridSentinel := strings.Repeat("R", ridLen)
	b, err := proto.Marshal(envoyRequest(method, host, path, tokSentinel, ridSentinel))
	if err != nil {
		return template{}, fmt.Errorf("marshal %s template: %w", method, err)
	}
	t := template{method: method, b: b, tokens: tokens, base: base}
	if bytes.Count(b, []byte(tokSentinel)) != 1 || bytes.Count(b, []byte(ridSentinel)) != 1 {
		return template{}, errors.New("template slots are not unique (host or path contains a sentinel)")
	}
	t.tokOff = bytes.Index(b, []byte(tokSentinel))
	if tokens == nil {
		t.tokOff += len("tok-")
	}
	t.ridOff = bytes.Index(b, []byte(ridSentinel))
	return t, nil
}

// fill writes a request for token n with request id (hi, lo) into buf,
// which must have the template's length.
func (t *template) fill(buf []byte, n, hi, lo uint64) {
	copy(buf, t.b)
	putUUID(buf[t.ridOff:t.ridOff+ridLen], hi, lo)
	if t.tokens != nil {
		copy(buf[t.tokOff:], t.tokens[(n-t.base)%uint64(len(t.tokens))])
		return
	}
	d := buf[t.tokOff : t.tokOff+tokenDigits]
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = '0' + byte(n%10)
		n /= 10
	}
}

const hexDigits = "0123456789abcdef"

// putUUID writes hi, lo as 8-4-4-4-12 hex.
func putUUID(b []byte, hi, lo uint64) {
	j := 0
	for i := range 32 {
		if i == 8 || i == 12 || i == 16 || i == 20 {
			b[j] = '-'
			j++
		}
		v := hi
		if i >= 16 {
			v = lo
		}
		b[j] = hexDigits[(v>>(60-4*(i%16)))&0xf]
		j++
	}
}

// rawMsg carries marshalled bytes through gRPC: the request as built, the
// response reduced to its status code.
type rawMsg struct {
	b    []byte
	code int32
}

// rawCodec sends rawMsg bytes as they are and parses only the status code
// of a CheckResponse, so the client's cost stays out of the measurement.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(*rawMsg)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(m.b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*rawMsg)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		b = data.Materialize()
	}
	code, err := checkStatusCode(b)
	m.code = code
	return err
}

// checkStatusCode reads CheckResponse.status.code (field 1, then field 1);
// absent means OK, as in proto3.
func checkStatusCode(b []byte) (int32, error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			st, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, protowire.ParseError(n)
			}
			for len(st) > 0 {
				num, typ, n := protowire.ConsumeTag(st)
				if n < 0 {
					return 0, protowire.ParseError(n)
				}
				st = st[n:]
				if num == 1 && typ == protowire.VarintType {
					v, n := protowire.ConsumeVarint(st)
					if n < 0 {
						return 0, protowire.ParseError(n)
					}
					return int32(v), nil
				}
				if n = protowire.ConsumeFieldValue(num, typ, st); n < 0 {
					return 0, protowire.ParseError(n)
				}
				st = st[n:]
			}
			return 0, nil
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return 0, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return 0, nil
}
