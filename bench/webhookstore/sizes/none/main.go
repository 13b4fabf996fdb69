// Command none is the baseline of the size comparison: a program that
// writes a file and does nothing else.
package main

import "os"

func main() {
	if err := os.WriteFile(os.Args[1], []byte("x"), 0o600); err != nil {
		panic(err)
	}
}
