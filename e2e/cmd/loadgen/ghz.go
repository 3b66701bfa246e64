package main

import (
	"bufio"
	"fmt"
	"os"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// writeGhzData writes a JSON array of CheckRequests, one per token, for
// ghz -D: ghz sends the array's elements round-robin, so its requests are
// the ones loadgen sends (with a fixed x-request-id per token).
func writeGhzData(file string, o loadOptions) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	w.WriteString("[\n")
	for n := range o.tokens {
		if n > 0 {
			w.WriteString(",\n")
		}
		rid := make([]byte, ridLen)
		putUUID(rid, 0x6c6f616467656e00, uint64(n))
		b, err := protojson.Marshal(envoyRequest("GET", o.host, o.path, tokenString(uint64(n)), string(rid)))
		if err != nil {
			f.Close()
			return fmt.Errorf("marshal ghz data: %w", err)
		}
		w.Write(b)
	}
	w.WriteString("\n]\n")
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeProtoset writes external_auth.proto and its imports as a
// FileDescriptorSet, dependencies first, for ghz --protoset (leasegate
// serves no reflection).
func writeProtoset(file string) error {
	var set descriptorpb.FileDescriptorSet
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imps := fd.Imports()
		for i := range imps.Len() {
			add(imps.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	add(authv3.File_envoy_service_auth_v3_external_auth_proto)
	b, err := proto.Marshal(&set)
	if err != nil {
		return fmt.Errorf("marshal protoset: %w", err)
	}
	return os.WriteFile(file, b, 0o644)
}
