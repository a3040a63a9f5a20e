// Package s3test runs a real S3-compatible server for tests: versitygw
// (github.com/versity/versitygw, pinned in go.mod as a tool), serving a
// temporary directory through its posix backend on a loopback port.
//
// The versitygw binary is built once per machine and versitygw version
// into the user's cache directory (or taken from $MAILHOOK_VERSITYGW), so
// only the first test run pays for the build. Start never skips: if the
// server cannot be built or started, the test fails and says why.
//
// MAILHOOK_TEST_S3_ENDPOINT (with MAILHOOK_TEST_S3_ACCESS_KEY and
// MAILHOOK_TEST_S3_SECRET_KEY) runs the same tests against another
// S3-compatible server instead: see Server.External.
//
// It is test-only code: it never runs in production, and it only listens
// on 127.0.0.1.
package s3test
