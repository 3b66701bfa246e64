package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/leasegate/leasegate/e2e/internal/hydra"
	"github.com/leasegate/leasegate/e2e/internal/leasegate"
	"github.com/leasegate/leasegate/e2e/internal/storage"
)

// TestDemo runs the whole scripted demo (what `make demo` runs), so the
// README's first command keeps working. It skips like the e2e tests when
// Hydra or leasegate are unavailable, unless LEASEGATE_E2E_REQUIRE is set.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes ~15s; skipped with -short")
	}
	missing := func(what string, err error) {
		t.Helper()
		if os.Getenv("LEASEGATE_E2E_REQUIRE") == "" {
			t.Skipf("skipping: %s unavailable: %v (set LEASEGATE_E2E_REQUIRE=1 to fail instead)", what, err)
		}
		t.Fatalf("%s unavailable: %v", what, err)
	}
	if _, err := hydra.Binary(); err != nil {
		if errors.Is(err, hydra.ErrBinaryMissing) {
			missing("ORY Hydra", err)
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := storage.Ensure(ctx); err != nil {
		missing("XRootD, nginx and davix", err)
	}
	bin, err := leasegate.Binary(ctx, t.TempDir())
	if err != nil {
		missing("leasegate binary", err)
	}

	var out bytes.Buffer
	if err := run(ctx, options{leasegate: bin, out: &out}); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"revocation bound (GET /config): 10s",
		"DELETE asks Hydra: refused at once",
		"window closed: Hydra says inactive",
		"next read goes to Hydra",
		"/metrics",
		"/config",
		"A grid job on a storage element",
		"a DELETE always asks Hydra",
		"DELETE asks Hydra: 401 at once; on disk: \"events of run 42\"",
		"window closed: Hydra says inactive",
		"expectations held",
		"stopping Hydra",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("demo output:\n%s", out.String())
	}
}
