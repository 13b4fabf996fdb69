package webhooks

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Handler returns the callback listener's handler: POST
// /hooks/{route}/{token}. It answers 200 only once the callback is
// committed to the store; a refusal stores nothing.
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.serveCallback) }

func (s *Service) serveCallback(w http.ResponseWriter, r *http.Request) {
	cfg := s.config()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.refuse(w, r, http.StatusMethodNotAllowed, refuseMethod, "")
		return
	}
	if len(cfg.SourceCIDRs) > 0 && !inAny(cfg.SourceCIDRs, sourceAddr(r, cfg.TrustedProxies)) {
		s.refuse(w, r, http.StatusForbidden, refuseSource, "")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/hooks/")
	name, token, ok2 := strings.Cut(rest, "/")
	rt := cfg.routes[name]
	if !ok || !ok2 || rt == nil || !tokenOK(&cfg.Config, name, token) {
		s.refuse(w, r, http.StatusNotFound, refuseToken, "")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, cfg.maxBody()))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			s.refuse(w, r, http.StatusRequestEntityTooLarge, refuseSize, name)
		} else {
			s.refuse(w, r, http.StatusBadRequest, refusePayload, name)
		}
		return
	}
	ct := r.Header.Get("Content-Type")
	cb, err := ParseCallback(rt.Kind, ct, body)
	if err != nil {
		s.refuse(w, r, http.StatusBadRequest, refusePayload, name)
		return
	}
	out, _, err := s.q.Accept(Message{
		Route: name, Account: rt.Account, Key: cb.DedupeKey(name), Sid: cb.Sid,
		Terminal: cb.Terminal(), ContentType: ct, Body: body, Source: SourceExotel,
		ReceivedAt: s.now(),
	})
	if err != nil {
		s.log.Error().Err(err).Str("route", name).Msg("webhooks: storing a callback failed")
		s.refuse(w, r, http.StatusServiceUnavailable, refuseStore, name)
		return
	}
	switch out {
	case Accepted:
		s.stats.received(recvAccepted)
		s.wake(name)
	case Duplicate:
		s.stats.received(recvDuplicate)
	case Variant:
		s.stats.received(recvVariant)
		s.log.Info().Str("route", name).Str("sid", cb.Sid).Msg("webhooks: a repeated callback with a different body")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "OK\n")
}

// refuse answers a callback that failed a check and logs why: the reason
// and the route when it is a configured one, never the token or the body.
func (s *Service) refuse(w http.ResponseWriter, r *http.Request, code int, reason, route string) {
	s.stats.received(reason)
	ev := s.log.Warn().Str("reason", reason).Int("status", code).Str("remote", r.RemoteAddr)
	if route != "" {
		ev = ev.Str("route", route)
	}
	ev.Msg("webhooks: callback refused")
	http.Error(w, http.StatusText(code), code)
}

// sourceAddr returns the address a callback came from: the peer's, or,
// when the peer is a trusted proxy, the right-most X-Forwarded-For address
// that is not a trusted proxy. An unreadable address is the zero Addr,
// which no range contains.
func sourceAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	src := peer.Unmap()
	if !inAny(trusted, src) {
		return src
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}
		}
		src = a.Unmap()
		if !inAny(trusted, src) {
			return src
		}
	}
	return src
}

func inAny(ps []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
