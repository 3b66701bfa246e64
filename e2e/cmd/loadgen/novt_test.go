//go:build !vtprotobuf

package main

import authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

// marshalVT: go-control-plane compiles its generated marshallers only
// with the vtprotobuf build tag.
func marshalVT(*authv3.CheckResponse) ([]byte, bool) { return nil, false }
