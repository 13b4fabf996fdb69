package rotate

import (
	"slices"
	"testing"
)

// A replica named twice, with or without a trailing slash, is asked and
// counted once.
func TestReplicaURLs(t *testing.T) {
	got := replicaURLs([]string{"http://10.0.1.7:9901/", "http://10.0.1.8:9901", "http://10.0.1.7:9901", "http://10.0.1.8:9901//"})
	want := []string{"http://10.0.1.7:9901", "http://10.0.1.8:9901"}
	if !slices.Equal(got, want) {
		t.Errorf("replicaURLs = %q, want %q", got, want)
	}
}
