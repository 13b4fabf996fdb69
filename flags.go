package main

import (
	"errors"
	"flag"
)

// flagError is a command-line error the flag package has already printed,
// with the usage: main only sets the exit code.
type flagError struct {
	err  error
	code int
}

func (e flagError) Error() string { return e.err.Error() }
func (e flagError) ExitCode() int { return e.code }

// parseFlags parses args into fs, marking a parse error as printed, with
// exit code 2 as Go's commands have.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return flagError{err: err, code: 2}
	}
	return err
}
