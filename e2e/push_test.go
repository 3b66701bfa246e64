package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/leasegate/leasegate/e2e/internal/hydra"
	"github.com/leasegate/leasegate/e2e/internal/leasegate"
)

// Push revocation with a real ORY Hydra (SPEC §9): Hydra's OpenID Connect
// back-channel logout reaches leasegate, and a leased token of the
// logged-out session is validated again on its next request.

// backchannelTiers lease reads for a minute: without the logout, a
// revoked session's reads would be hits for that long.
func backchannelTiers() map[string]leasegate.Tier {
	return leasegate.StandardTiers(60*time.Second, time.Second, 0, 0)
}

// withBackchannel gives an issuer entry Hydra's key set (for logout
// tokens, through the counting proxy) and the back-channel logout
// receiver for clientID.
func (s *stack) withBackchannel(iss *leasegate.Issuer, clientID string) {
	iss.JWKSURI = s.public.URL() + hydra.JWKSPath
	iss.BackchannelLogout = &leasegate.BackchannelLogout{ClientIDs: []string{clientID}}
}

// portalClient registers the stack's authorization-code client (the one
// codeTokens logs in through), its back-channel logout pointed at
// leasegate later, once leasegate listens (setLogoutURI). It first has
// Hydra make its ID-token signing key (on the first JWKS request, seconds
// on a busy machine), so leasegate's key set is there when it starts.
func (s *stack) portalClient(t *testing.T) hydra.Client {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	if _, err := s.hydra.KeyIDs(ctx); err != nil {
		t.Fatalf("warm Hydra's JWKS: %v", err)
	}
	c, err := s.hydra.CreateCodeClient(ctx, hydra.CodeClientOptions{
		Name: "leasegate-e2e-portal", Scopes: []string{"openid", "offline_access", "read", "write"}, Audience: []string{audStorage},
	})
	if err != nil {
		t.Fatalf("create hydra client: %v", err)
	}
	s.codeMu.Lock()
	s.code = c
	s.codeMu.Unlock()
	return c
}

func (s *stack) setLogoutURI(t *testing.T, c hydra.Client, uri string) {
	t.Helper()
	if err := s.hydra.SetBackchannelLogoutURI(testCtx(t, 10*time.Second), c.ID, uri); err != nil {
		t.Fatal(err)
	}
}

// sessionTokens logs codeSubject in (a remembered login, so Hydra can end
// the session by sid) with the session's id in the access token's claims,
// and checks that Hydra's introspection reports it under ext.
func (s *stack) sessionTokens(t *testing.T) hydra.CodeFlowTokens {
	t.Helper()
	toks := s.codeTokens(t, hydra.CodeFlowOptions{Remember: true, SessionClaim: "sid"})
	ans, err := s.hydra.Introspect(testCtx(t, 10*time.Second), toks.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if ext, _ := ans["ext"].(map[string]any); ext["sid"] != toks.SessionID {
		t.Fatalf("Hydra introspection ext %v lacks sid %s", ans["ext"], toks.SessionID)
	}
	return toks
}

func (s *stack) endSession(t *testing.T, sid string) time.Time {
	t.Helper()
	at := time.Now()
	if err := s.hydra.RevokeLoginSession(testCtx(t, 10*time.Second), sid); err != nil {
		t.Fatalf("end the session at Hydra: %v", err)
	}
	t.Logf("Hydra answered DELETE /admin/oauth2/auth/sessions/login after %v", time.Since(at).Round(100*time.Microsecond))
	return at
}

// TestBackchannelLogoutHydra: a user logs in twice (two sessions); both
// access tokens are leased and their reads are hits. Hydra ends the first
// session, and POSTs its logout token (sid, no sub) to leasegate: the
// next read of that session's token is validated with Hydra again (one
// introspection) and allowed, the token being still active; the other
// session's token stays a hit.
func TestBackchannelLogoutHydra(t *testing.T) {
	t.Parallel()
	bin := leasegateBin(t)
	ctx := testCtx(t, 2*time.Minute)
	s := newIssuerSide(t, ctx, false)
	client := s.portalClient(t)
	iss := s.issuerConfig("introspection", 0, nil)
	s.withBackchannel(&iss, client.ID)
	s.cfg = s.baseConfig(iss, backchannelTiers())
	s.leasegate = s.startLeasegate(t, ctx, bin, s.cfg, nil)
	var err error
	if s.client, err = leasegate.Dial(s.leasegate.GRPCAddr()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.client.Close() })
	s.setLogoutURI(t, client, s.leasegate.AdminURL()+"/backchannel-logout")

	one, two := s.sessionTokens(t), s.sessionTokens(t)
	if one.SessionID == two.SessionID {
		t.Fatal("two logins, one session")
	}
	read := func(tok string) leasegate.Request {
		return leasegate.Request{Method: "GET", Path: "/data/f", Token: tok}
	}
	for _, tok := range []string{one.AccessToken, two.AccessToken} {
		s.expect(t, read(tok), expectation{allowed: true, lease: "miss", calls: 1})
		s.expect(t, read(tok), expectation{allowed: true, lease: "hit", calls: 0})
	}

	ended := s.endSession(t, one.SessionID)
	before := s.introspections()
	var first time.Duration
	for deadline := ended.Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		res := s.check(t, read(one.AccessToken))
		if res.Lease() != "hit" {
			first = time.Since(ended)
			if !res.Allowed() || res.Lease() != "miss" {
				t.Fatalf("first read after the logout: %v, want allowed on a miss (the token is still active at Hydra)", res)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after Hydra ended the session its token is still a lease hit:\n%s", grepLog(s.leasegate.Logs(), "push"))
		}
	}
	if n := s.introspections() - before; n != 1 {
		t.Errorf("the logout cost %d introspections, want 1", n)
	}
	t.Logf("Hydra ended the session → first re-validated read: %v", first.Round(100*time.Microsecond))
	if first > 2*time.Second {
		t.Errorf("re-validation %v after the session ended, want within 2s", first)
	}
	s.expect(t, read(one.AccessToken), expectation{allowed: true, lease: "hit", calls: 0})
	s.expect(t, read(two.AccessToken), expectation{allowed: true, lease: "hit", calls: 0})

	m := s.metrics(t)
	if got := m.Sum("leasegate_push_requests_total", map[string]string{"receiver": "backchannel", "outcome": "accepted"}); got != 1 {
		t.Errorf("accepted back-channel logouts %v, want 1", got)
	}
	line := grepLog(s.leasegate.Logs(), `"msg":"push revocation"`)
	if !strings.Contains(line, `"source":"backchannel"`) || !strings.Contains(line, "sid="+one.SessionID) {
		t.Errorf("push revocation log line %q does not name the source and session", line)
	}
}

// TestBackchannelLogoutHydraFleet: three replicas share one Redis; Hydra's
// logout token reaches replica 0 only. The session's token was revoked at
// Hydra beforehand, so only the lease still allows it: after the logout
// every replica refuses it, each measured from the session's end, with
// one introspection for the fleet.
func TestBackchannelLogoutHydraFleet(t *testing.T) {
	t.Parallel()
	redisAvailable(t)
	bin := leasegateBin(t)
	ctx := testCtx(t, 2*time.Minute)
	s := newIssuerSide(t, ctx, false)
	client := s.portalClient(t)
	f := startFleet(t, ctx, s, bin, fleetOptions{Tiers: backchannelTiers(), Issuer: func(iss *leasegate.Issuer) { s.withBackchannel(iss, client.ID) }})
	s.setLogoutURI(t, client, f.replicas[0].AdminURL()+"/backchannel-logout")
	toks := s.sessionTokens(t)
	tok := toks.AccessToken
	before := s.introspections()
	for round := range 2 {
		for i := range f.replicas {
			if res := f.on(t, i, readReq(tok)); !res.Allowed() || res.Lease() == "miss" && (round > 0 || i > 0) {
				t.Fatalf("round %d, replica %d: %v, want allowed on a lease", round, i, res)
			}
		}
	}
	if n := s.introspections() - before; n != 1 {
		t.Fatalf("leasing on three replicas cost %d introspections, want 1", n)
	}
	if err := s.hydra.Revoke(ctx, client, tok); err != nil {
		t.Fatal(err)
	}
	for i := range f.replicas { // still leased: the revocation at Hydra alone is not seen
		if res := f.on(t, i, readReq(tok)); !res.Allowed() {
			t.Fatalf("replica %d refused before the logout: %v", i, res)
		}
	}

	before = s.introspections()
	ended := s.endSession(t, toks.SessionID)
	refusedAt := make([]time.Duration, len(f.replicas))
	for left, deadline := len(f.replicas), ended.Add(10*time.Second); left > 0; time.Sleep(time.Millisecond) {
		for i := range f.replicas {
			if refusedAt[i] != 0 {
				continue
			}
			if res := f.on(t, i, readReq(tok)); !res.Allowed() {
				refusedAt[i] = time.Since(ended)
				left--
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after Hydra ended the session: refused at %v (0: still allowed)", refusedAt)
		}
	}
	for i, d := range refusedAt {
		t.Logf("Hydra ended the session → replica %d refuses the token: %v", i, d.Round(100*time.Microsecond))
		if d > 2*time.Second {
			t.Errorf("replica %d refused %v after the session ended, want within 2s", i, d)
		}
	}
	if n := s.introspections() - before; n != 1 {
		t.Errorf("the logout cost the fleet %d introspections, want 1", n)
	}
	for i := 1; i < len(f.replicas); i++ {
		m := f.metricsOf(t, i)
		if got := m.Sum("leasegate_fleet_revocations_total", map[string]string{"source": "backchannel"}); got != 1 {
			t.Errorf("replica %d applied %v back-channel revocations from the fleet, want 1", i, got)
		}
	}
}

// grepLog is the lines of log that contain sub.
func grepLog(log, sub string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// postPush posts body to a push receiver and returns the status and body.
func postPush(ctx context.Context, u, contentType, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", contentType)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	return res.StatusCode, string(b), err
}

// TestBackchannelLogoutRefusedByTheBinary: what does not come from Hydra
// signed for the registered client is refused with 400 and revokes
// nothing, through the built binary.
func TestBackchannelLogoutRefusedByTheBinary(t *testing.T) {
	t.Parallel()
	bin := leasegateBin(t)
	ctx := testCtx(t, time.Minute)
	s := newIssuerSide(t, ctx, false)
	iss := s.issuerConfig("introspection", 0, nil)
	s.withBackchannel(&iss, "portal-client")
	s.cfg = s.baseConfig(iss, backchannelTiers())
	s.leasegate = s.startLeasegate(t, ctx, bin, s.cfg, nil)
	for name, body := range map[string]string{
		"garbage":          url.Values{"logout_token": {"garbage"}}.Encode(),
		"an access token":  url.Values{"logout_token": {s.token(t)}}.Encode(),
		"no logout_token":  "logout=1",
		"a forged logout ": url.Values{"logout_token": {"eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ." + b64url(fmt.Sprintf(`{"iss":%q,"aud":"portal-client","sid":"s","jti":"j","iat":%d,"events":{"http://schemas.openid.net/event/backchannel-logout":{}}}`, s.hydra.Issuer(), time.Now().Unix())) + ".c2ln"}}.Encode(),
	} {
		code, out, err := postPush(ctx, s.leasegate.AdminURL()+"/backchannel-logout", "application/x-www-form-urlencoded", body)
		if err != nil || code != 400 || !strings.Contains(out, `"error":"invalid_request"`) {
			t.Errorf("%s: %d %s %v, want 400 invalid_request", name, code, out, err)
		}
	}
	if strings.Contains(s.leasegate.Logs(), `"msg":"push revocation"`) {
		t.Error("a refused logout revoked")
	}
}
