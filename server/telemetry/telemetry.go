// Package telemetry builds the OpenTelemetry tracer provider from the
// config's tracing block and the standard OTEL_* environment.
package telemetry

import (
	"context"
	"fmt"
	"strconv"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config is the tracing block; it overrides the standard OTEL_*
// environment when set. Each field defaults to "": the environment's value.
type Config struct {
	// Exporter is otlp, console or none.
	Exporter string `yaml:"exporter"`
	// Endpoint is the collector's absolute http(s) URL.
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc or http/protobuf.
	Protocol string `yaml:"protocol"`
	// Sampler is an OTEL_TRACES_SAMPLER name.
	Sampler string `yaml:"sampler"`
	// SamplerArg is the sampler's argument; only with Sampler.
	SamplerArg *string `yaml:"sampler_arg"`
	// ServiceName is the service.name resource attribute.
	ServiceName string `yaml:"service_name"`
}

// Setup builds the tracer provider from the standard OTEL_*
// environment, with the config's tracing block taking precedence. With no
// exporter and no OTLP endpoint configured anywhere, tracing is off rather
// than retrying a collector that is not there.
func Setup(ctx context.Context, cfg Config, version string, getenv func(string) string) (trace.TracerProvider, func(context.Context) error, error) {
	off := func(context.Context) error { return nil }
	exporter, err := Exporter(cfg, getenv)
	if err != nil {
		return nil, nil, err
	}
	if exporter == "" {
		return noop.NewTracerProvider(), off, nil
	}

	var exp sdktrace.SpanExporter
	switch {
	case exporter == "console":
		exp, err = stdouttrace.New()
	case exporter == "otlp" && cfg.Endpoint != "" && cfg.Protocol == "http/protobuf":
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint))
	case exporter == "otlp" && cfg.Endpoint != "":
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
	default:
		// autoexport reads OTEL_TRACES_EXPORTER and the OTLP variables.
		exp, err = autoexport.NewSpanExporter(ctx)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("tracing exporter %s: %w", exporter, err)
	}

	name := cfg.ServiceName
	if name == "" {
		name = "leasegate"
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(name), semconv.ServiceVersion(version)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing resource: %w", err)
	}
	// WithBatcher starts the batch goroutine at once, so every check that
	// can fail comes before it.
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if cfg.Sampler != "" {
		s, err := Sampler(cfg.Sampler, cfg.SamplerArg)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, sdktrace.WithSampler(s))
	}
	opts = append(opts, sdktrace.WithBatcher(exp))
	tp := sdktrace.NewTracerProvider(opts...)
	return tp, tp.Shutdown, nil
}

// Exporter is the exporter Setup builds from the config and
// the OTEL_* environment, "" for none. Config validation calls it too, so
// an environment start-up would refuse fails -check as well (SPEC §6).
func Exporter(cfg Config, getenv func(string) string) (string, error) {
	if getenv("OTEL_SDK_DISABLED") == "true" {
		return "", nil
	}
	exporter := cfg.Exporter
	if exporter == "" {
		exporter = getenv("OTEL_TRACES_EXPORTER")
	}
	if exporter == "" {
		if cfg.Endpoint == "" && getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return "", nil
		}
		exporter = "otlp"
	}
	switch exporter {
	case "none":
		return "", nil
	case "console":
		return exporter, nil
	case "otlp":
		if cfg.Endpoint != "" {
			return exporter, nil
		}
		// autoexport reads the protocol, the traces' own first.
		k := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
		p := getenv(k)
		if p == "" {
			k = "OTEL_EXPORTER_OTLP_PROTOCOL"
			p = getenv(k)
		}
		if p != "" && p != "grpc" && p != "http/protobuf" {
			return "", fmt.Errorf("%s %q is not grpc or http/protobuf", k, p)
		}
		return exporter, nil
	}
	return "", fmt.Errorf("OTEL_TRACES_EXPORTER %q is not otlp, console or none", exporter)
}

// Sampler maps the OTEL_TRACES_SAMPLER names.
func Sampler(name string, arg *string) (sdktrace.Sampler, error) {
	ratio := 1.0
	if arg != nil {
		r, err := strconv.ParseFloat(*arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("tracing.sampler_arg %q is not a ratio between 0 and 1", *arg)
		}
		ratio = r
	}
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("tracing.sampler %q is not a known OTEL_TRACES_SAMPLER value", name)
}
