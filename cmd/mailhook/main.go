// Command mailhook receives email over SMTP and POSTs it, signed, to
// webhooks. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// usageError is bad usage or configuration: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr, stop)
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode maps errors to exit status in one place: 0 ok, 2 bad usage or
// configuration, 1 any other failure.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "mailhook:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

const usage = `usage: mailhook [command]

commands:
  serve      run the SMTP acceptor, the HTTP side and the dispatcher (default)
  replay     put finally-failed deliveries back on the queue:
             replay --failed | --id EVENT_ID | --since DURATION_OR_RFC3339
                    [--endpoint URL] [--dry-run] [--rate PER_SECOND]
             with --pending, send pending deliveries now instead, to
             --endpoint or where their recipients route now
  config     print the effective configuration (secrets redacted);
             config --help-env prints the table of every variable
  healthcheck  exit 0 if the local server answers /healthz (--ready: /readyz)
  version    print the version

Configuration comes only from MAILHOOK_* environment variables.`

// run is the whole program. unhook releases the signal handlers so that a
// second SIGTERM or SIGINT kills the process at once.
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer, unhook func()) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		if len(args) > 0 {
			return usagef("serve takes no arguments (configuration is by MAILHOOK_* variables)")
		}
		return serve(ctx, lookup, stderr, unhook)
	case "replay":
		return replay(ctx, args, lookup, stdout, stderr)
	case "config":
		return configCmd(args, lookup, stdout)
	case "healthcheck":
		return healthcheck(ctx, args, lookup, stdout)
	case "version", "--version", "-version":
		if len(args) > 0 {
			return usagef("version takes no arguments")
		}
		fmt.Fprintln(stdout, "mailhook", version)
		return nil
	case "help", "-h", "--help", "-help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return usagef("unknown command %q\n%s", cmd, usage)
}
