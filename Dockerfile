# Build stage: the same command as `make build`.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/leasegate .

# Runtime: static binary, no shell, non-root.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/leasegate /usr/local/bin/leasegate
COPY examples/leasegate.yaml /etc/leasegate/leasegate.yaml
USER nonroot:nonroot
# 9001 ext_authz gRPC + health, 9002 HTTP-mode auth, 9191 admin.
EXPOSE 9001 9002 9191
ENTRYPOINT ["/usr/local/bin/leasegate"]
CMD ["-config", "/etc/leasegate/leasegate.yaml"]
