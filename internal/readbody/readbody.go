// Package readbody reads a request body into one buffer sized from its
// declared length, instead of io.ReadAll's doubling from 512 bytes.
package readbody

import "io"

// maxPrealloc bounds the buffer allocated on a declared length alone.
const maxPrealloc = 64 << 10

// Read reads r to EOF, but at most limit+1 bytes: a result longer than
// limit means the body is too large. sizeHint is the declared length
// (http.Request.ContentLength, -1 if unknown); when it is within limit the
// buffer starts at sizeHint+1 bytes, at most maxPrealloc, so a body of the
// declared length is read without growing it. The hint only sizes the
// buffer: a body longer or shorter than declared is read as it is, and a
// client that declares a large body and sends nothing holds no more than
// maxPrealloc.
func Read(r io.Reader, limit, sizeHint int64) ([]byte, error) {
	size := int64(512)
	if sizeHint >= 0 && sizeHint <= limit {
		size = min(sizeHint+1, maxPrealloc)
	}
	b := make([]byte, 0, min(size, limit+1))
	lr := io.LimitedReader{R: r, N: limit + 1}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}
