package deploy

// The Prometheus rules in prometheus/ and their copy in docs/operations.md:
// well-formed, reproduced verbatim, and using only documented metrics.

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const (
	rulesFile = "prometheus/exogate-alerts.yaml"
	opsDoc    = "../docs/operations.md"
)

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var (
	// a metric row of the table in docs/operations.md: | `exogate_x` | ...
	docMetric = regexp.MustCompile("(?m)^\\| `(exogate_[a-z0-9_]+)` \\|")
	// a metric name in an expression
	exprMetric = regexp.MustCompile(`exogate_[a-z0-9_]*[a-z0-9]`)
	// a selector on the metric name by regex
	nameRegex = regexp.MustCompile(`__name__=~"([^"]+)"`)
)

// checkAlerts returns the problems of a rules file and the doc that copies it.
func checkAlerts(rules []byte, doc string) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	documented := map[string]bool{}
	for _, m := range docMetric.FindAllStringSubmatch(doc, -1) {
		documented[m[1]] = true
	}
	if len(documented) == 0 {
		bad("docs/operations.md has no metrics table")
	}
	if !strings.Contains(doc, "```yaml\n"+string(rules)+"```") {
		bad("docs/operations.md does not reproduce %s verbatim in a ```yaml block", rulesFile)
	}

	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(rules)))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		bad("%s: %v", rulesFile, err)
		return problems
	}
	if len(rf.Groups) == 0 {
		bad("%s: no groups", rulesFile)
	}
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			bad("%s: a group needs a name and rules", rulesFile)
		}
		for _, r := range g.Rules {
			if r.Alert == "" {
				bad("%s: a rule without alert (recording rules do not belong here)", rulesFile)
				continue
			}
			if seen[r.Alert] {
				bad("%s: alert %s twice", rulesFile, r.Alert)
			}
			seen[r.Alert] = true
			if strings.TrimSpace(r.Expr) == "" {
				bad("%s: %s has no expr", rulesFile, r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					bad("%s: %s for %q: %v", rulesFile, r.Alert, r.For, err)
				}
			}
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				bad("%s: %s severity %q, want critical, warning or info", rulesFile, r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" {
				bad("%s: %s has no summary annotation", rulesFile, r.Alert)
			}
			expr := r.Expr
			for _, m := range nameRegex.FindAllStringSubmatch(expr, -1) {
				re, err := regexp.Compile("^(?:" + m[1] + ")$")
				if err != nil {
					bad("%s: %s: %v", rulesFile, r.Alert, err)
					continue
				}
				n := 0
				for name := range documented {
					if re.MatchString(name) {
						n++
					}
				}
				if n == 0 {
					bad("%s: %s: __name__=~%q matches no documented metric", rulesFile, r.Alert, m[1])
				}
				expr = strings.ReplaceAll(expr, m[0], "")
			}
			for _, name := range exprMetric.FindAllString(expr, -1) {
				base := name
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(name, suffix); ok && documented[b] {
						base = b
					}
				}
				if !documented[base] {
					bad("%s: %s uses %s, which docs/operations.md does not document", rulesFile, r.Alert, name)
				}
			}
		}
	}
	return problems
}

func readAlertFiles(t *testing.T) ([]byte, string) {
	t.Helper()
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(opsDoc)
	if err != nil {
		t.Fatal(err)
	}
	return rules, string(doc)
}

func TestAlertRules(t *testing.T) {
	rules, doc := readAlertFiles(t)
	for _, p := range checkAlerts(rules, doc) {
		t.Error(p)
	}
}

func TestAlertChecksCatchBreakage(t *testing.T) {
	rules, doc := readAlertFiles(t)
	for _, tc := range []struct {
		name       string
		inDoc      bool // edit the doc instead of the rules
		old, new   string
		wantSubstr string
	}{
		{"undocumented metric", false, "exogate_limiter_backend{", "exogate_limiter_mode{", "uses exogate_limiter_mode"},
		{"name regex matching nothing", false, `exogate_limiter_(admitted|rejected)_total`, `exogate_limiter_(let|refused)_total`, "matches no documented metric"},
		{"copy out of date", true, "severity: critical", "severity: page", "verbatim"},
		{"no severity", false, "severity: critical", "team: exotel", "severity \"\""},
		{"bad for", false, "for: 5m", "for: soon", `for "soon"`},
		{"misspelt key", false, "annotations:", "anotations:", "field anotations not found"},
		{"metric dropped from the table", true, "| `exogate_breaker_state` |", "| `exogate_breaker` |", "uses exogate_breaker_state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, d := string(rules), doc
			target := &r
			if tc.inDoc {
				target = &d
			}
			if !strings.Contains(*target, tc.old) {
				t.Fatalf("%q not found: update this case", tc.old)
			}
			*target = strings.Replace(*target, tc.old, tc.new, 1)
			if !tc.inDoc {
				// keep the doc's copy in step, so only the intended check fails
				d = strings.Replace(d, string(rules), r, 1)
			}
			problems := checkAlerts([]byte(r), d)
			for _, p := range problems {
				if strings.Contains(p, tc.wantSubstr) {
					return
				}
			}
			t.Errorf("no problem mentions %q; got %q", tc.wantSubstr, problems)
		})
	}
}
