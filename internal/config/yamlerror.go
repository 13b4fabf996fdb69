package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// describeYAMLError says what the YAML library found wrong with data in the
// file's terms. The library reports decoding problems as a *yaml.TypeError,
// one message per problem, each a line number and a sentence, with no
// structure beyond that; every other error (a syntax error, or one of ours
// from an UnmarshalYAML) is a single such message. Each message becomes:
//
//   - "field x not found in type config.T" → `unknown key "x"`;
//   - "line N: rest" → "line N: a.b[0].c: rest", naming the key whose value
//     is on line N (the value quoted in rest, or the list or map rest names,
//     when several are);
//
// and the problems are joined with "; " on one line.
func describeYAMLError(err error, data []byte) string {
	msgs := []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	if te := (*yaml.TypeError)(nil); errors.As(err, &te) {
		msgs = te.Errors
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // what does not parse names no field
	values := keyedValues(&root, "", nil)
	for i, m := range msgs {
		msgs[i] = describeYAMLProblem(m, values)
	}
	return strings.Join(msgs, "; ")
}

// describeYAMLProblem rewrites one of the library's messages.
func describeYAMLProblem(msg string, values []keyedValue) string {
	if i := strings.Index(msg, "field "); i >= 0 {
		if j := strings.Index(msg, " not found in type "); j > i {
			return msg[:i] + fmt.Sprintf("unknown key %q", msg[i+len("field "):j])
		}
	}
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return msg
	}
	num, tail, _ := strings.Cut(rest, ": ")
	n, err := strconv.Atoi(num)
	if err != nil {
		return msg
	}
	if field := fieldAt(values, n, tail); field != "" {
		return fmt.Sprintf("line %d: %s: %s", n, field, tail)
	}
	return msg
}

// keyedValue is a value in the document and the dotted path of its key.
type keyedValue struct {
	path string
	node *yaml.Node
}

// keyedValues lists, in document order, every value under n that has a
// key or a list index.
func keyedValues(n *yaml.Node, prefix string, out []keyedValue) []keyedValue {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			out = keyedValues(c, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			path := n.Content[i].Value
			if prefix != "" {
				path = prefix + "." + path
			}
			out = append(out, keyedValue{path, n.Content[i+1]})
			out = keyedValues(n.Content[i+1], path, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			path := fmt.Sprintf("%s[%d]", prefix, i)
			out = append(out, keyedValue{path, c})
			out = keyedValues(c, path, out)
		}
	}
	return out
}

// fieldAt names the key whose value on line the library's message is
// about: the scalar the message quotes (`value`, cut to "abcdefg..." when
// long), or the map or list it names (!!map, !!seq); else, or when none
// matches, the first scalar on that line.
func fieldAt(values []keyedValue, line int, msg string) string {
	var want func(*yaml.Node) bool
	switch {
	case strings.Contains(msg, "!!map "):
		want = func(n *yaml.Node) bool { return n.Kind == yaml.MappingNode }
	case strings.Contains(msg, "!!seq "):
		want = func(n *yaml.Node) bool { return n.Kind == yaml.SequenceNode }
	default:
		_, quoted, ok := strings.Cut(msg, "`")
		value, _, closed := strings.Cut(quoted, "`")
		if ok && closed {
			prefix, cut := strings.CutSuffix(value, "...")
			want = func(n *yaml.Node) bool {
				return n.Kind == yaml.ScalarNode && (n.Value == value || cut && strings.HasPrefix(n.Value, prefix))
			}
		}
	}
	first := ""
	for _, v := range values {
		if v.node.Line != line {
			continue
		}
		if first == "" && v.node.Kind == yaml.ScalarNode {
			first = v.path
		}
		if want != nil && want(v.node) {
			return v.path
		}
	}
	return first
}
