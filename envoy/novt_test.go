//go:build !vtprotobuf

package envoy

const vtprotobufTag = false
