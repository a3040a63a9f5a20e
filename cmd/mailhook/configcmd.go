package main

import (
	"io"

	"github.com/mailhook/mailhook/config"
)

func configCmd(args []string, lookup func(string) (string, bool), stdout io.Writer) error {
	if len(args) == 1 && (args[0] == "--help-env" || args[0] == "-help-env") {
		return config.WriteHelp(stdout)
	}
	if len(args) > 0 {
		return usagef("config takes no arguments but --help-env")
	}
	c, err := loadConfig(lookup)
	if err != nil {
		return err
	}
	return c.WriteEffective(stdout)
}

// loadConfig loads the configuration; any problem is a usage error (exit 2).
func loadConfig(lookup func(string) (string, bool)) (*config.Config, error) {
	c, err := config.Load(lookup)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}
