//go:build vtprotobuf

package envoy

const vtprotobufTag = true
