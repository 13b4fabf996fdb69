package gateway

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/exogate/exogate/internal/config"
)

// testConfig is a validated configuration of one account whose key and
// token come from the environment getenv reads.
func testConfig(t *testing.T) (config.Config, func(string) string) {
	t.Helper()
	env := map[string]string{
		config.EnvAPIKey:     "key-0123456789",
		config.EnvAPIToken:   "token-0123456789",
		config.EnvAccountSID: "acme",
	}
	getenv := func(k string) string { return env[k] }
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg, getenv
}

// go-redis's logger is process-wide: main routes it once. A gateway build,
// and so a reload, must not set it again.
func TestGatewayLeavesRedisLoggerToMain(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "RouteRedisLogs" {
				t.Errorf("%s: the gateway calls RouteRedisLogs; only main may", fset.Position(sel.Pos()))
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("no source file read")
	}
}
