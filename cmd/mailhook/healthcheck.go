package main

import (
	"context"
	"errors"
	"io"
)

// healthcheck is a placeholder until the real one lands.
func healthcheck(ctx context.Context, args []string, lookup func(string) (string, bool), stdout io.Writer) error {
	return errors.New("healthcheck: not implemented yet")
}
