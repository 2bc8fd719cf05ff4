// Package packerutil is glue shared by the plugin's Packer components: it
// adapts the domain packages' plain callbacks to Packer's UI. Only Packer
// component packages import it.
package packerutil

import (
	"io"
	"sync"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// Progress adapts a "done of total" callback to ui.TrackProgress, which
// tracks bytes read through a reader: each call reads the new bytes from a
// reader of zeros, through the tracker. Close it when the operation ends.
type Progress struct {
	mu      sync.Mutex
	ui      packersdk.Ui
	name    string
	tracked io.ReadCloser
	done    int64
	buf     []byte
}

// NewProgress returns a progress reporter shown under name.
func NewProgress(ui packersdk.Ui, name string) *Progress {
	return &Progress{ui: ui, name: name, buf: make([]byte, 1<<20)}
}

// Update reports done bytes of total; calls must not go backwards.
func (p *Progress) Update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tracked == nil {
		p.tracked = p.ui.TrackProgress(p.name, 0, total, io.NopCloser(zeroReader{}))
	}
	for p.done < done {
		n := done - p.done
		if n > int64(len(p.buf)) {
			n = int64(len(p.buf))
		}
		m, err := p.tracked.Read(p.buf[:n])
		p.done += int64(m)
		if err != nil || m == 0 {
			return
		}
	}
}

// Close ends the progress display.
func (p *Progress) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tracked != nil {
		p.tracked.Close()
		p.tracked = nil
	}
}

type zeroReader struct{}

func (zeroReader) Read(b []byte) (int, error) { return len(b), nil }
