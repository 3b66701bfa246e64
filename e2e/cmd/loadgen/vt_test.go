//go:build vtprotobuf

package main

import authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

// marshalVT uses go-control-plane's generated marshaller.
func marshalVT(r *authv3.CheckResponse) ([]byte, bool) {
	b, err := r.MarshalVTStrict()
	return b, err == nil
}
