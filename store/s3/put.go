package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mailhook/mailhook/store"
)

// smallBuf is the first buffer a Put reads into, so that typical messages
// do not take a whole part buffer.
const smallBuf = 256 << 10

// Put stores body under key. A body that fits in one part is buffered and
// sent with one PutObject; a longer one is sent as a multipart upload, one
// part in memory at a time. Put returns once the server has acknowledged
// the object; on any failure nothing is stored.
func (s *Store) Put(ctx context.Context, key string, body io.Reader, opts store.PutOptions) (store.Object, error) {
	if err := store.ValidKey(key); err != nil {
		return store.Object{}, fmt.Errorf("s3: put: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return store.Object{}, fmt.Errorf("s3: put %s: %w", key, err)
	}
	if opts.IfNoneMatch && opts.IfMatch != "" {
		return store.Object{}, fmt.Errorf("s3: put %s: IfNoneMatch and IfMatch together", key)
	}
	w := &writer{s: s, ctx: ctx, key: key, opts: opts}
	obj, err := w.put(body)
	if err != nil {
		return store.Object{}, fmt.Errorf("s3: put %s: %w", key, err)
	}
	return obj, nil
}

// writer is one Put under way.
type writer struct {
	s    *Store
	ctx  context.Context
	key  string
	opts store.PutOptions
}

func (w *writer) put(body io.Reader) (store.Object, error) {
	sp := w.s.smallPool.Get().(*[]byte)
	defer w.s.smallPool.Put(sp)
	n, err := io.ReadFull(body, *sp)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return w.single((*sp)[:n])
	case err != nil:
		return store.Object{}, fmt.Errorf("read body: %w", err)
	}

	// More than smallBuf: fill one part.
	lp := w.s.partPool.Get().(*[]byte)
	defer w.s.partPool.Put(lp)
	buf := *lp
	copy(buf, (*sp)[:n])
	m, err := io.ReadFull(body, buf[n:])
	n += m
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return w.single(buf[:n])
	case err != nil:
		return store.Object{}, fmt.Errorf("read body: %w", err)
	}
	// The part is full: one more byte decides between PutObject and a
	// multipart upload.
	var one [1]byte
	switch _, err := io.ReadFull(body, one[:]); {
	case err == io.EOF:
		return w.single(buf)
	case err != nil:
		return store.Object{}, fmt.Errorf("read body: %w", err)
	}
	return w.multipart(buf, io.MultiReader(bytes.NewReader(one[:]), body))
}

// checkSize reports a body whose length contradicts a known Size.
func (w *writer) checkSize(n int64) error {
	if w.opts.Size > 0 && n != w.opts.Size {
		return fmt.Errorf("body has %d bytes, Size says %d", n, w.opts.Size)
	}
	return nil
}

func (w *writer) op() op {
	switch {
	case w.opts.IfNoneMatch:
		return opPutCreate
	case w.opts.IfMatch != "":
		return opPutCAS
	}
	return opPut
}

func (w *writer) conditions() (ifMatch, ifNoneMatch *string) {
	if w.opts.IfNoneMatch {
		ifNoneMatch = aws.String("*")
	}
	if w.opts.IfMatch != "" {
		ifMatch = aws.String(w.opts.IfMatch)
	}
	return ifMatch, ifNoneMatch
}

func (w *writer) contentType() *string {
	if w.opts.ContentType == "" {
		return nil
	}
	return aws.String(w.opts.ContentType)
}

// single stores data with one PutObject.
func (w *writer) single(data []byte) (store.Object, error) {
	if err := w.checkSize(int64(len(data))); err != nil {
		return store.Object{}, err
	}
	s := w.s
	ifMatch, ifNoneMatch := w.conditions()
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           aws.String(s.prefix + w.key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentMD5:    contentMD5(data),
		ContentType:   w.contentType(),
		IfMatch:       ifMatch,
		IfNoneMatch:   ifNoneMatch,
	}
	ctx, cancel := s.withTimeout(w.ctx, s.timeout+sizeTime(int64(len(data))))
	defer cancel()
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		return store.Object{}, translate(w.ctx, ctx, err, w.op())
	}
	return w.result(aws.ToString(out.ETag), int64(len(data)), serverTime(out.ResultMetadata))
}

// result describes the object just written; a server that sends no ETag
// is asked for it.
func (w *writer) result(etag string, size int64, mod time.Time) (store.Object, error) {
	if etag == "" {
		return w.s.Stat(w.ctx, w.key)
	}
	return store.Object{Key: w.key, Size: size, ETag: quoteETag(etag), ModTime: mod}, nil
}

// multipart stores first (a full part) and the rest of the body with a
// multipart upload, reusing first's buffer for every part. Any failure
// aborts the upload, so nothing is stored.
func (w *writer) multipart(buf []byte, rest io.Reader) (store.Object, error) {
	s := w.s
	ctx, cancel := s.withTimeout(w.ctx, s.timeout)
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:      &s.bucket,
		Key:         aws.String(s.prefix + w.key),
		ContentType: w.contentType(),
	})
	if err != nil {
		err = translate(w.ctx, ctx, err, opPut)
		cancel()
		return store.Object{}, fmt.Errorf("create multipart upload: %w", err)
	}
	cancel()
	id := created.UploadId

	var (
		parts []types.CompletedPart
		total int64
		data  = buf
		last  bool
	)
	for {
		if len(data) > 0 {
			if len(parts) == maxParts {
				return store.Object{}, w.abort(id, fmt.Errorf("body exceeds %d parts of %d bytes", maxParts, len(buf)))
			}
			etag, err := w.uploadPart(id, int32(len(parts)+1), data)
			if err != nil {
				return store.Object{}, w.abort(id, err)
			}
			parts = append(parts, types.CompletedPart{ETag: etag, PartNumber: aws.Int32(int32(len(parts) + 1))})
			total += int64(len(data))
			if w.opts.Size > 0 && total > w.opts.Size {
				return store.Object{}, w.abort(id, w.checkSize(total))
			}
		}
		if last {
			break
		}
		n, err := io.ReadFull(rest, buf)
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			last = true
		case err != nil:
			return store.Object{}, w.abort(id, fmt.Errorf("read body: %w", err))
		}
		data = buf[:n]
	}
	if err := w.checkSize(total); err != nil {
		return store.Object{}, w.abort(id, err)
	}
	if err := w.ctx.Err(); err != nil {
		return store.Object{}, w.abort(id, err)
	}

	ifMatch, ifNoneMatch := w.conditions()
	ctx, cancel = s.withTimeout(w.ctx, s.timeout)
	defer cancel()
	out, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             aws.String(s.prefix + w.key),
		UploadId:        id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfMatch:         ifMatch,
		IfNoneMatch:     ifNoneMatch,
	})
	if err != nil {
		return store.Object{}, w.abort(id, fmt.Errorf("complete multipart upload: %w", translate(w.ctx, ctx, err, w.op())))
	}
	return w.result(aws.ToString(out.ETag), total, serverTime(out.ResultMetadata))
}

func (w *writer) uploadPart(id *string, n int32, data []byte) (*string, error) {
	s := w.s
	ctx, cancel := s.withTimeout(w.ctx, s.timeout+sizeTime(int64(len(data))))
	defer cancel()
	out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:        &s.bucket,
		Key:           aws.String(s.prefix + w.key),
		UploadId:      id,
		PartNumber:    aws.Int32(n),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentMD5:    contentMD5(data),
	})
	if err != nil {
		return nil, fmt.Errorf("upload part %d: %w", n, translate(w.ctx, ctx, err, opPut))
	}
	return out.ETag, nil
}

// abort gives up the multipart upload id and returns cause. It runs even
// when the caller's context is done; if it fails the parts stay on the
// server until a lifecycle rule (AbortIncompleteMultipartUpload) removes
// them, which is logged.
func (w *writer) abort(id *string, cause error) error {
	s := w.s
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), s.timeout)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   &s.bucket,
		Key:      aws.String(s.prefix + w.key),
		UploadId: id,
	})
	if err != nil {
		err = translate(ctx, ctx, err, opRead)
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("multipart upload not aborted; its parts stay until a lifecycle rule removes them",
				"key", w.key, "upload_id", aws.ToString(id), "err", err)
		}
	}
	return cause
}

// contentMD5 is the Content-MD5 header for data (RFC 1864).
func contentMD5(data []byte) *string {
	sum := md5.Sum(data)
	return aws.String(base64.StdEncoding.EncodeToString(sum[:]))
}
