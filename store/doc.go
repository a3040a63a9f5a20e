// Package store defines the object storage contract every mailhook stage
// keeps its state in: raw messages, delivery records, leases.
//
// Backends live in subpackages named for what they are (store/fs, and
// S3-compatible storage next), each exporting a type Store that satisfies
// Store. Package storetest holds the contract suite every backend runs.
//
// The package owns keys, conditional writes and the error vocabulary
// (ErrNotFound, ErrPrecondition, ErrUnavailable). It never knows what an
// object means.
package store
