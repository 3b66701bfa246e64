package issuer

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDateMember(t *testing.T) {
	// SPEC §1: "Any exp a token can carry works". Out-of-range values are
	// clamped (never refused, never overflowed), in the safe direction.
	year9999 := time.Unix(maxNumericDate, 0).UTC()
	tests := []struct {
		raw     string
		want    time.Time
		wantErr bool
	}{
		{raw: `1893456000`, want: time.Unix(1893456000, 0).UTC()},
		{raw: `1893456000.25`, want: time.Unix(1893456000, 250e6).UTC()},
		{raw: `9999999999`, want: time.Unix(9999999999, 0).UTC()}, // 2286, past UnixNano's 2262
		{raw: `253402300799`, want: year9999},
		{raw: `253402300800`, want: year9999},
		{raw: `1e15`, want: year9999},
		{raw: `1e400`, want: year9999}, // beyond float64
		{raw: `0`, want: time.Unix(0, 0).UTC()},
		{raw: `-1`, want: time.Unix(0, 0).UTC()},
		{raw: `-1e400`, want: time.Unix(0, 0).UTC()},
		{raw: `1e-400`, want: time.Unix(0, 0).UTC()},
		{raw: `"1893456000"`, wantErr: true},
		{raw: `true`, wantErr: true},
		{raw: `[1]`, wantErr: true},
		{raw: `{}`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := dateMember(map[string]json.RawMessage{"exp": json.RawMessage(tc.raw)}, "exp")
			if tc.wantErr {
				if err == nil {
					t.Fatalf("dateMember(%s) = %s, want an error", tc.raw, got)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("dateMember(%s) = %s, %v; want %s", tc.raw, got, err, tc.want)
			}
		})
	}
	t.Run("null and absent are zero", func(t *testing.T) {
		for _, obj := range []map[string]json.RawMessage{{}, {"exp": json.RawMessage(`null`)}} {
			if got, err := dateMember(obj, "exp"); err != nil || !got.IsZero() {
				t.Fatalf("dateMember(%v) = %s, %v; want zero", obj, got, err)
			}
		}
	})
}

func TestExpiredRule(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		exp  time.Time
		want bool
	}{
		{time.Time{}, false}, // no exp: the lease window and lifetime policy bound it
		{now.Add(time.Nanosecond), false},
		{now, true},
		{now.Add(-time.Nanosecond), true},
		{now.Add(-30 * time.Second), true}, // inside clock_skew: still expired
	} {
		if got := Expired(tc.exp, now); got != tc.want {
			t.Errorf("Expired(%s, %s) = %v, want %v", tc.exp, now, got, tc.want)
		}
	}
}

func TestNotAccessToken(t *testing.T) {
	// SPEC §2: "Only access tokens pass". Liberal with real access-token
	// spellings, strict with everything else.
	tests := []struct {
		name    string
		obj     string
		refused bool
		wantErr bool
	}{
		{name: "nothing said", obj: `{}`},
		{name: "Hydra access token", obj: `{"token_type":"Bearer","token_use":"access_token"}`},
		{name: "Hydra refresh token", obj: `{"token_type":"Bearer","token_use":"refresh_token"}`, refused: true},
		{name: "older Hydra access token", obj: `{"token_type":"access_token"}`},
		{name: "older Hydra refresh token", obj: `{"token_type":"refresh_token"}`, refused: true},
		{name: "DPoP", obj: `{"token_type":"DPoP"}`},
		{name: "bearer in lower case", obj: `{"token_type":"bearer"}`},
		{name: "RFC 8693 access token URI", obj: `{"token_type":"urn:ietf:params:oauth:token-type:access_token"}`},
		{name: "RFC 8693 refresh token URI", obj: `{"token_type":"urn:ietf:params:oauth:token-type:refresh_token"}`, refused: true},
		{name: "RFC 8693 id token URI", obj: `{"token_type":"urn:ietf:params:oauth:token-type:id_token"}`, refused: true},
		{name: "RFC 8693 N_A", obj: `{"token_type":"N_A"}`, refused: true},
		{name: "MAC", obj: `{"token_type":"mac"}`, refused: true},
		{name: "id_token", obj: `{"token_use":"id_token"}`, refused: true},
		{name: "Cognito access", obj: `{"token_use":"access"}`},
		{name: "Cognito id", obj: `{"token_use":"id"}`, refused: true},
		{name: "Keycloak Bearer", obj: `{"typ":"Bearer"}`},
		{name: "Keycloak ID", obj: `{"typ":"ID"}`, refused: true},
		{name: "Keycloak Refresh", obj: `{"typ":"Refresh"}`, refused: true},
		{name: "Keycloak Offline", obj: `{"typ":"Offline"}`, refused: true},
		{name: "Keycloak Logout", obj: `{"typ":"Logout"}`, refused: true},
		{name: "one access, one refresh", obj: `{"token_type":"Bearer","typ":"Refresh"}`, refused: true},
		{name: "empty string names nothing", obj: `{"token_type":"","token_use":""}`},
		{name: "null is absent", obj: `{"token_use":null}`},
		{name: "ID token at_hash", obj: `{"at_hash":"x"}`, refused: true},
		{name: "ID token c_hash", obj: `{"c_hash":"x"}`, refused: true},
		{name: "FAPI s_hash", obj: `{"s_hash":"x"}`, refused: true},
		{name: "logout token events", obj: `{"events":{"http://schemas.openid.net/event/backchannel-logout":{}}}`, refused: true},
		{name: "nonce alone is allowed (Keycloak access tokens carry it)", obj: `{"nonce":"n"}`},
		{name: "token_use a number", obj: `{"token_use":1}`, wantErr: true},
		{name: "typ an array", obj: `{"typ":["Bearer"]}`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := decodeObject([]byte(tc.obj))
			if err != nil {
				t.Fatal(err)
			}
			refusal, err := notAccessToken(obj)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error %v", err, tc.wantErr)
			}
			if got := refusal != ""; got != tc.refused && !tc.wantErr {
				t.Fatalf("refused = %v (%q), want %v", got, refusal, tc.refused)
			}
		})
	}
}

func TestIsAccessTokenType(t *testing.T) {
	for _, ok := range []string{"JWT", "jwt", "application/jwt", "at+jwt", "AT+JWT", "application/at+jwt", "Application/At+Jwt", "Bearer", "DPoP", "access_token"} {
		if !isAccessTokenType(ok) {
			t.Errorf("%q refused, want accepted", ok)
		}
	}
	for _, bad := range []string{"", "application/", "id_token", "refresh_token", "logout+jwt", "application/logout+jwt", "secevent+jwt",
		"dpop+jwt", "token-introspection+jwt", "jwt ", " jwt", "jwt+at", "application/application/jwt", "x-jwt", "ID", "N_A"} {
		if isAccessTokenType(bad) {
			t.Errorf("%q accepted, want refused", bad)
		}
	}
}
