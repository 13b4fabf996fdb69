// Command exogate is an authenticating gateway for the Exotel API: internal
// services send it their Exotel REST calls without credentials, and it adds
// the account's own, routes to the account's region, keeps within Exotel's
// rate limits and answers its own errors in Exotel's shapes.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.As(err, new(flagError)) {
			fmt.Fprintln(os.Stderr, "exogate:", err)
		}
		code := 1
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		os.Exit(code)
	}
}
