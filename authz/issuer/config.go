package issuer

import "errors"

// Problem is one reason a client refuses its configuration. Field is the
// key as SPEC §7 spells it inside an issuer ("endpoint", "jwks_uri"), ""
// when no one key is to blame, so a caller can point at the line.
type Problem struct {
	Field string
	Msg   string
}

// joinProblems keeps the constructors' error text: the messages, joined.
func joinProblems(ps []Problem) error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = errors.New(p.Msg)
	}
	return errors.Join(errs...)
}
