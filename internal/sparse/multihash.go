package sparse

import (
	"io"
	"sync"
)

// parallelWriter writes every slice to all its writers at once, each in
// its own goroutine, and returns when all are done: hashing with MD5 and
// SHA-256 then costs the slower of the two, not their sum.
type parallelWriter struct {
	ws   []io.Writer
	in   []chan []byte
	done chan error
	once sync.Once
}

func newParallelWriter(ws []io.Writer) *parallelWriter {
	p := &parallelWriter{ws: ws, done: make(chan error, len(ws))}
	for _, w := range ws {
		ch := make(chan []byte)
		p.in = append(p.in, ch)
		go func(w io.Writer, ch chan []byte) {
			for b := range ch {
				_, err := w.Write(b)
				p.done <- err
			}
		}(w, ch)
	}
	return p
}

func (p *parallelWriter) Write(b []byte) (int, error) {
	for _, ch := range p.in {
		ch <- b
	}
	var first error
	for range p.in {
		if err := <-p.done; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return 0, first
	}
	return len(b), nil
}

// Close stops the goroutines.
func (p *parallelWriter) Close() {
	p.once.Do(func() {
		for _, ch := range p.in {
			close(ch)
		}
	})
}
