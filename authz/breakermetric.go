package authz

// BreakersOpen reports, for each issuer, whether its circuit breaker
// refuses calls now (open, or waiting on its probe), for
// metrics.BreakerCollector.
func (e *Engine) BreakersOpen() map[string]bool {
	open := make(map[string]bool, len(e.byName))
	for name, is := range e.byName {
		open[name] = is.BreakerOpen()
	}
	return open
}
