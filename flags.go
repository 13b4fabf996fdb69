package main

import (
	"errors"
	"flag"
)

// flagError is a command-line error the flag package has already printed,
// with the usage: main only sets the exit code, 2 as Go's commands do.
type flagError struct {
	err  error
	code int // 0: 2
}

func (e flagError) Error() string { return e.err.Error() }
func (e flagError) ExitCode() int {
	if e.code == 0 {
		return 2
	}
	return e.code
}

// parseFlags parses args into fs, marking a parse error as printed.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return flagError{err: err}
	}
	return err
}
