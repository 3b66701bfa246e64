package envoy

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The gRPC handler's decode of a CheckRequest: only the fields
// checkCall.fill reads (attributes.context_extensions; of
// attributes.request.http: id, method, path, host, headers, header_map),
// with protobuf's rules for them (the last of a repeated scalar wins, a
// message or map given twice is merged, a field of an unexpected wire
// type is skipped, a string must be UTF-8). Every other field is skipped
// as protobuf skips an unknown one: its framing is checked, its content
// is not (a body that is not UTF-8 does not refuse the request). Decoding
// all of it by reflection was a tenth of a hit's CPU (BENCHMARKS.md).
// TestDecodeReadMatchesProtobuf and FuzzDecodeRead hold this to protobuf
// decoding a schema that has only these fields.
//
// The strings share one copy of the bytes they came from, at most the
// size of the fields read: nothing may keep them past the Check.

// Bounds: how many fields are read (every header, header_map entry and
// context extension, each time it is sent; checkCall.fill refuses more
// than MaxHeaderFields headers anyway), and a map's size hint.
const (
	maxWireFields = 2*MaxHeaderFields + 1024
	maxMapHint    = 64
)

// Field numbers, from the generated descriptors.
var (
	numAttributes    = fieldNumber(&authv3.CheckRequest{}, "attributes")
	numRequest       = fieldNumber(&authv3.AttributeContext{}, "request")
	numExtensions    = fieldNumber(&authv3.AttributeContext{}, "context_extensions")
	numHTTP          = fieldNumber(&authv3.AttributeContext_Request{}, "http")
	numID            = fieldNumber(&authv3.AttributeContext_HttpRequest{}, "id")
	numMethod        = fieldNumber(&authv3.AttributeContext_HttpRequest{}, "method")
	numPath          = fieldNumber(&authv3.AttributeContext_HttpRequest{}, "path")
	numHost          = fieldNumber(&authv3.AttributeContext_HttpRequest{}, "host")
	numHeaders       = fieldNumber(&authv3.AttributeContext_HttpRequest{}, "headers")
	numHeaderMap     = fieldNumber(&authv3.AttributeContext_HttpRequest{}, "header_map")
	numMapHeaders    = fieldNumber(&corev3.HeaderMap{}, "headers")
	numHVKey         = fieldNumber(&corev3.HeaderValue{}, "key")
	numHVValue       = fieldNumber(&corev3.HeaderValue{}, "value")
	numHVRaw         = fieldNumber(&corev3.HeaderValue{}, "raw_value")
	numEntryKey      = protowire.Number(1) // a map entry's (protobuf's encoding of maps)
	numEntryValue    = protowire.Number(2)
	errNotUTF8       = errors.New("string field is not valid UTF-8")
	errTooManyFields = fmt.Errorf("more than %d fields to read", maxWireFields)
	errFieldNumber   = errors.New("invalid field number")
	errDecodeFailed  = errors.New("envoy: decode CheckRequest")
)

func fieldNumber(m proto.Message, name string) protowire.Number {
	f := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name))
	if f == nil {
		panic("envoy: generated message " + string(m.ProtoReflect().Descriptor().FullName()) + " has no field " + name)
	}
	return f.Number()
}

// checkIn is what checkHandler decodes into: the request with the
// messages decodeRead fills (one allocation for them all), and with the
// adapter's codec the error that kept its bytes from decoding. gRPC
// answers an error of the codec itself with a gRPC error, which Envoy
// hands to failure_mode_allow; the codec keeps it here instead. Another
// codec decodes all of req through ProtoReflect and fails as it would.
type checkIn struct {
	req authv3.CheckRequest
	err error
	// all: decode every field (an interceptor sees the whole request).
	all       bool
	attrs     authv3.AttributeContext
	request   authv3.AttributeContext_Request
	http      authv3.AttributeContext_HttpRequest
	headerMap corev3.HeaderMap
	scratch   [24]wireField
}

// span is a field's bytes, b[lo:hi] while reading, then the same text's
// place in the copy.
type span struct{ lo, hi int }

type wireKind uint8

const (
	kindID wireKind = iota
	kindMethod
	kindPath
	kindHost
	kindHeader      // a headers map entry: key, value
	kindExtension   // a context_extensions map entry: key, value
	kindHeaderValue // a header_map entry: key, value, raw_value
)

// wireField is one field read, in the order met, which is the order
// protobuf applies them in.
type wireField struct {
	kind          wireKind
	key, val, raw span
}

// wireReader is decodeRead's first pass: it checks the framing and the
// strings and notes where the fields read are.
type wireReader struct {
	b                             []byte
	fields                        []wireField
	attrs, request, http, hdrsMap bool // present
}

// decodeRead fills in.req from b as described above.
func decodeRead(b []byte, in *checkIn) error {
	r := wireReader{b: b, fields: in.scratch[:0]}
	err := r.each(span{0, len(b)}, func(num protowire.Number, v span) error {
		if num != numAttributes {
			return nil
		}
		r.attrs = true
		return r.attributes(v)
	})
	if err != nil {
		return fmt.Errorf("%w: %w", errDecodeFailed, err)
	}
	r.build(in)
	return nil
}

// each calls f for every length-delimited field of b[s.lo:s.hi] and
// skips the others, checking their framing as protobuf does.
func (r *wireReader) each(s span, f func(protowire.Number, span) error) error {
	for lo := s.lo; lo < s.hi; {
		num, typ, n := protowire.ConsumeTag(r.b[lo:s.hi])
		if n < 0 {
			return protowire.ParseError(n)
		}
		if num > protowire.MaxValidNumber {
			return errFieldNumber
		}
		lo += n
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, r.b[lo:s.hi])
			if n < 0 {
				return protowire.ParseError(n)
			}
			lo += n
			continue
		}
		v, n := protowire.ConsumeBytes(r.b[lo:s.hi])
		if n < 0 {
			return protowire.ParseError(n)
		}
		if err := f(num, span{lo + n - len(v), lo + n}); err != nil {
			return err
		}
		lo += n
	}
	return nil
}

func (r *wireReader) attributes(s span) error {
	return r.each(s, func(num protowire.Number, v span) error {
		switch num {
		case numRequest:
			r.request = true
			return r.each(v, func(num protowire.Number, v span) error {
				if num != numHTTP {
					return nil
				}
				r.http = true
				return r.httpRequest(v)
			})
		case numExtensions:
			return r.entry(kindExtension, v)
		}
		return nil
	})
}

func (r *wireReader) httpRequest(s span) error {
	return r.each(s, func(num protowire.Number, v span) error {
		switch num {
		case numID:
			return r.str(kindID, v)
		case numMethod:
			return r.str(kindMethod, v)
		case numPath:
			return r.str(kindPath, v)
		case numHost:
			return r.str(kindHost, v)
		case numHeaders:
			return r.entry(kindHeader, v)
		case numHeaderMap:
			r.hdrsMap = true
			return r.each(v, func(num protowire.Number, v span) error {
				if num != numMapHeaders {
					return nil
				}
				return r.headerValue(v)
			})
		}
		return nil
	})
}

// utf8 checks a string field as protobuf does, every occurrence of it.
func (r *wireReader) utf8(v span) error {
	if !utf8.Valid(r.b[v.lo:v.hi]) {
		return errNotUTF8
	}
	return nil
}

func (r *wireReader) str(kind wireKind, v span) error {
	if err := r.utf8(v); err != nil {
		return err
	}
	return r.add(wireField{kind: kind, val: v})
}

// add notes a field read, refusing more than maxWireFields: a field is
// ~30× the bytes of an empty map entry, and protobuf keeps one entry
// per key however often it is sent.
func (r *wireReader) add(f wireField) error {
	if len(r.fields) >= maxWireFields {
		return errTooManyFields
	}
	r.fields = append(r.fields, f)
	return nil
}

// entry reads a map<string, string> entry: a missing key or value is "".
func (r *wireReader) entry(kind wireKind, s span) error {
	return r.keyValue(kind, s, numEntryKey, numEntryValue, 0)
}

func (r *wireReader) headerValue(s span) error {
	return r.keyValue(kindHeaderValue, s, numHVKey, numHVValue, numHVRaw)
}

// keyValue reads a message of two strings and, unless rawNum is 0 (never
// a field's number), a bytes field (not UTF-8 checked); the last of each
// wins.
func (r *wireReader) keyValue(kind wireKind, s span, keyNum, valNum, rawNum protowire.Number) error {
	f := wireField{kind: kind}
	err := r.each(s, func(num protowire.Number, v span) error {
		switch num {
		case keyNum:
			f.key = v
		case valNum:
			f.val = v
		case rawNum:
			f.raw = v
			return nil
		default:
			return nil
		}
		return r.utf8(v)
	})
	if err != nil {
		return err
	}
	return r.add(f)
}

// build fills in's messages from the fields read, in the order read.
func (r *wireReader) build(in *checkIn) {
	s, raw, n := r.copyOut()
	if !r.attrs {
		return
	}
	in.req.Attributes = &in.attrs
	if r.request {
		in.attrs.Request = &in.request
	}
	if r.http {
		in.request.Http = &in.http
	}
	if r.hdrsMap {
		in.http.HeaderMap = &in.headerMap
	}
	// The hints are capped: entries of one key count once in the map.
	if n[kindHeader] > 0 {
		in.http.Headers = make(map[string]string, min(n[kindHeader], maxMapHint))
	}
	if n[kindExtension] > 0 {
		in.attrs.ContextExtensions = make(map[string]string, min(n[kindExtension], maxMapHint))
	}
	var hvs []corev3.HeaderValue
	if n[kindHeaderValue] > 0 {
		hvs = make([]corev3.HeaderValue, n[kindHeaderValue])
		in.headerMap.Headers = make([]*corev3.HeaderValue, 0, n[kindHeaderValue])
	}
	for i := range r.fields {
		f := &r.fields[i]
		key, val := s[f.key.lo:f.key.hi], s[f.val.lo:f.val.hi]
		switch f.kind {
		case kindID:
			in.http.Id = val
		case kindMethod:
			in.http.Method = val
		case kindPath:
			in.http.Path = val
		case kindHost:
			in.http.Host = val
		case kindHeader:
			in.http.Headers[key] = val
		case kindExtension:
			in.attrs.ContextExtensions[key] = val
		case kindHeaderValue:
			hv := &hvs[len(in.headerMap.Headers)]
			hv.Key, hv.Value = key, val
			if f.raw.hi > f.raw.lo {
				hv.RawValue = raw[f.raw.lo:f.raw.hi:f.raw.hi]
			}
			in.headerMap.Headers = append(in.headerMap.Headers, hv)
		}
	}
}

// copyOut copies the text read into one string and the raw values into
// one buffer, moves the spans onto them, and counts the fields by kind.
func (r *wireReader) copyOut() (string, []byte, [kindHeaderValue + 1]int) {
	var n [kindHeaderValue + 1]int
	var text, raw int
	for i := range r.fields {
		f := &r.fields[i]
		text += f.key.hi - f.key.lo + f.val.hi - f.val.lo
		raw += f.raw.hi - f.raw.lo
		n[f.kind]++
	}
	var sb strings.Builder
	sb.Grow(text)
	rawBuf := make([]byte, 0, raw)
	move := func(v span) span {
		lo := sb.Len()
		sb.Write(r.b[v.lo:v.hi])
		return span{lo, sb.Len()}
	}
	for i := range r.fields {
		f := &r.fields[i]
		f.key, f.val = move(f.key), move(f.val)
		lo := len(rawBuf)
		rawBuf = append(rawBuf, r.b[f.raw.lo:f.raw.hi]...)
		f.raw = span{lo, len(rawBuf)}
	}
	return sb.String(), rawBuf, n
}
