package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
)

// Token returns route's URL token under secret: HMAC-SHA256(secret, route),
// base64url without padding. Whoever knows the token may post callbacks to
// the route; it is derived, so rotating the secret changes every route's.
func Token(secret []byte, route string) string {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(route))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// tokenOK reports in constant time whether token is route's under the
// current or the previous secret.
func tokenOK(cfg *Config, route, token string) bool {
	ok := hmac.Equal([]byte(token), []byte(Token(cfg.URLSecret, route)))
	if len(cfg.PreviousURLSecret) > 0 {
		prev := hmac.Equal([]byte(token), []byte(Token(cfg.PreviousURLSecret, route)))
		ok = ok || prev
	}
	return ok
}

// URL returns the URL Exotel should call for route: the public URL, then
// /hooks/{route}/{token}. It is a secret: whoever has it may post to the
// route.
func (s *Service) URL(route string) (string, error) {
	cfg := s.config()
	if _, ok := cfg.routes[route]; !ok {
		return "", fmt.Errorf("webhooks: no route %q", route)
	}
	return strings.TrimSuffix(cfg.PublicURL, "/") + "/hooks/" + url.PathEscape(route) + "/" +
		Token(cfg.URLSecret, route), nil
}
