// Package s3 is the store.Store backend for Amazon S3 and S3-compatible
// servers (Cloudflare R2, MinIO, versitygw, Ceph RGW, …).
//
// # What it owns
//
// It maps store keys onto objects of one bucket, below an optional key
// prefix ("prefix/key"), and speaks to the server with aws-sdk-go-v2:
//
//   - Put buffers at most one part (Config.PartSize, 8 MiB by default) and
//     sends it with a single PutObject and Content-MD5; a longer body goes
//     up as a multipart upload, part by part, so a message is never held
//     in memory more than once. Put returns only after the server has
//     acknowledged the write. If the body fails, the size is wrong or the
//     context ends, nothing is stored and the multipart upload is aborted.
//   - Conditional writes use the server's own If-None-Match: "*" and
//     If-Match: <etag> on PutObject and CompleteMultipartUpload. The check
//     and the write are one atomic step on the server; there is no
//     read-then-write emulation. Servers without that support answer
//     501 and Put returns errors.ErrUnsupported; CheckConditionalWrites
//     proves at start-up that the server enforces them (some ignore them).
//   - ETags are the server's, quoted, and the same from Put, Get, Stat and
//     List.
//   - Errors are translated at the edge into store.ErrNotFound,
//     store.ErrPrecondition, store.ErrUnavailable (network, 5xx,
//     throttling, timeouts), ErrNoBucket, ErrAccess and ErrWrongRegion
//     (all three also match store.ErrUnavailable), so no SDK or smithy type ever reaches a
//     caller. Context errors from the caller's context stay context
//     errors.
//   - Every request gets its own timeout when the caller's context has no
//     deadline, and the SDK retries at most Config.MaxAttempts times, so an
//     outage surfaces as store.ErrUnavailable within seconds.
//
// # What it never does
//
// It never creates or configures the bucket (no CreateBucket, no
// lifecycle rules, no versioning), never reads environment variables of
// its own (credentials come from the SDK's default chain; everything else
// from Config), never logs object contents or credentials, and never
// writes outside its prefix.
//
// # Checksums
//
// Since January 2025 (aws-sdk-go-v2 service/s3 v1.73.0) the SDK computes a
// CRC32 checksum for every upload by default and, for streamed bodies,
// sends it as a trailer with "Content-Encoding: aws-chunked". Many
// S3-compatible servers (older MinIO, Ceph RGW, some R2 and
// vendor gateways) reject that encoding or the x-amz-checksum-* headers.
// The store therefore asks the SDK for checksums only when an operation
// requires one (aws.RequestChecksumCalculationWhenRequired and
// aws.ResponseChecksumValidationWhenRequired) and sends the classic
// Content-MD5 header instead, which every S3 implementation checks and
// which buckets with Object Lock require. Integrity of the bytes on the
// wire is thus still verified by the server.
package s3
