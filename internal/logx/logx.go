// Package logx adapts the structured logger for libraries that only know
// the standard library's *log.Logger (net/http's server, ReverseProxy).
package logx

import (
	"log"
	"strings"

	"github.com/rs/zerolog"
)

// StdLogger returns a *log.Logger whose every line becomes one warn-level
// zerolog event tagged with component, so nothing reaches stderr as plain
// text. The lines net/http writes (TLS handshake errors, aborted body
// copies) carry no header value or body.
func StdLogger(l zerolog.Logger, component string) *log.Logger {
	return log.New(writer{l: l, component: component}, "", 0)
}

type writer struct {
	l         zerolog.Logger
	component string
}

func (w writer) Write(p []byte) (int, error) {
	w.l.Warn().Str("component", w.component).Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
