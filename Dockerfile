# syntax=docker/dockerfile:1
#
# leasegate's image: `make build` in a pinned Go image, the static binary on
# distroless static as uid/gid 65532 (distroless's nonroot), with
# examples/container/leasegate.yaml as /etc/leasegate/leasegate.yaml.
# server/dockerfile_test.go checks this file; no engine is needed for that.
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always --dirty) -t leasegate .
#
# Refreshing the pins (both are reviewed commits, never a side effect):
#   - golang: the newest 1.26.x-bookworm tag on Docker Hub; keep it equal to
#     the toolchain `go version` reports for `make build` (go.mod says 1.26).
#   - distroless publishes no version tags, only moving ones (nonroot,
#     latest, ...), so it is pinned by the digest of the multi-arch nonroot
#     index:  crane digest gcr.io/distroless/static-debian12:nonroot
#     (or: docker buildx imagetools inspect gcr.io/distroless/static-debian12:nonroot)
#     and replace the sha256 below; the tag in front of it is only a label.

# Build on the builder's own platform and cross-compile for the target's:
# the binary is pure Go (CGO_ENABLED=0), so no emulation is needed.
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS TARGETARCH
# .git is not in the build context, so the Makefile cannot `git describe`:
# pass the version in.
ARG VERSION=dev
# The build step is `make build`, the Makefile's own recipe, so the image
# and a local build cannot drift apart.
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH make build VERSION=$VERSION

# Runtime: static binary, no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639
COPY --from=build /src/leasegate /usr/local/bin/leasegate
COPY examples/container/leasegate.yaml /etc/leasegate/leasegate.yaml
# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
# 9001 ext_authz gRPC + health, 9002 HTTP-mode auth, 9190 probes and
# metrics (no secret), 9191 admin.
EXPOSE 9001 9002 9190 9191
ENTRYPOINT ["/usr/local/bin/leasegate"]
CMD ["-config", "/etc/leasegate/leasegate.yaml"]
