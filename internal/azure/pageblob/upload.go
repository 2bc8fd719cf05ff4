// Package pageblob uploads a disk as a fixed VHD into an Azure page blob:
// only pages holding data are sent (holes found with SEEK_DATA/SEEK_HOLE,
// all-zero pages inside data skipped), in parallel, each Put Page with its
// transactional MD5, while one sequential pass hashes the whole blob for
// its Content-MD5. It never overwrites a blob it was not asked to replace,
// and an interrupted upload resumes. It imports nothing from Packer.
//
// Design choice: resume is decided by a metadata marker and checked by
// content. A new blob is created with metadata osimageupload =
// "pending:<fingerprint of the input>", which the last step (after
// Content-MD5 is set) replaces by osimagemd5 = <hex MD5>. A later run that
// finds a pending blob of the same size and fingerprint lists its page
// ranges (Get Page Ranges); every run of data pages already wholly present
// is downloaded and compared byte for byte with the input, and only runs
// that are missing or differ are sent again; present pages that should be
// zero are cleared. Put Page is atomic per request, so a killed upload
// leaves whole runs or nothing. Downloading what is present costs about
// what it saved but never trusts a page it has not checked.
package pageblob

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	azpageblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"
	"golang.org/x/sync/errgroup"

	"github.com/osimage/packer-plugin-osimage/internal/sparse"
	"github.com/osimage/packer-plugin-osimage/internal/vhd"
)

// Metadata names the uploader keeps on the blob.
const (
	MetaPending = "osimageupload" // "pending:<fingerprint>" while incomplete
	MetaMD5     = "osimagemd5"    // hex MD5 of the whole blob once complete
)

// DefaultParallel is azcopy's default concurrency for this machine's CPUs.
func DefaultParallel() int { return parallelFor(runtime.NumCPU()) }

// parallelFor is azcopy's rule: 16 per CPU, at least 32 and at most 300.
func parallelFor(cpus int) int { return min(max(16*cpus, 32), 300) }

// Target is where the blob goes.
type Target struct {
	Blob *azpageblob.Client
	// Container creates the container when it is missing; nil when
	// creating it is not wanted (or not possible, as with a blob SAS).
	Container *container.Client
	// secrets are removed from every error Upload returns (Redact);
	// NewTarget sets them.
	secrets []string
	// container reaches the blob's neighbours (PutSidecar).
	container *container.Client
}

// Options tune Upload.
type Options struct {
	// Parallel is the number of concurrent Put Page requests; 0 means
	// DefaultParallel().
	Parallel int
	// Overwrite replaces an existing blob that differs from the input.
	Overwrite bool
	// OverwriteOption and CreateContainerOption name, in errors, the setting
	// a user changes to overwrite a blob or create a missing container.
	OverwriteOption, CreateContainerOption string
	// Progress is called with the blob bytes done (hashed and, where they
	// hold data, uploaded) out of its size. Calls never go backwards.
	Progress func(done, total int64)
	// Metadata is set on the blob when it is complete (next to MetaMD5).
	Metadata map[string]string
	// Logf, if set, receives one line per decision (resume, reuse, clear).
	Logf func(format string, args ...any)
	// BeforeChange, if set, is called before the bytes of an existing blob
	// change: how is "overwritten" (a blob that differs, replaced as
	// Overwrite allows) or "resumed" (an unfinished upload continued). An
	// error stops the upload with the blob untouched. Whatever was made
	// from the blob's old bytes (gallery versions) is decided there.
	BeforeChange func(how string) error
}

// Result says what Upload did.
type Result struct {
	URL    string
	Size   int64  // blob size (virtual size + footer)
	MD5    []byte // of the whole blob, as set in Content-MD5
	MD5Hex string
	// Reused is true when an identical complete blob was already there:
	// nothing was sent.
	Reused bool
	// Resumed is true when an interrupted upload of the same input was
	// continued.
	Resumed bool
	// DataBytes is how many bytes of the blob are in non-zero pages.
	DataBytes int64
	// BytesSent is the payload sent with Put Page (retries not counted);
	// Requests the number of Put Page calls that succeeded.
	BytesSent int64
	Requests  int64
	// Verified is data already in the blob, checked and not sent again.
	Verified int64
	// Cleared is bytes of stale pages cleared in a resumed blob.
	Cleared int64
	// Replaced is true when an existing blob that differed was overwritten.
	Replaced bool
}

// ExistsError means the blob exists and is not what the upload would
// produce, and overwriting was not asked for.
type ExistsError struct {
	URL, Reason, Option string
}

func (e *ExistsError) Error() string {
	return fmt.Sprintf("blob %s already exists and %s; it is never overwritten unless asked: set %s to replace it", e.URL, e.Reason, e.Option)
}

func (o *Options) defaults() {
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel()
	}
	if o.OverwriteOption == "" {
		o.OverwriteOption = "Options.Overwrite"
	}
	if o.CreateContainerOption == "" {
		o.CreateContainerOption = "Options.CreateContainer"
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Upload puts src into the page blob of t. Its errors carry no SAS or
// account key, whatever their type (Redact).
func Upload(ctx context.Context, t Target, src *Source, o Options) (res Result, err error) {
	defer func() { err = Redact(err, t.secrets) }()
	return upload(ctx, t, src, o)
}

func upload(ctx context.Context, t Target, src *Source, o Options) (Result, error) {
	o.defaults()
	url := URLWithoutQuery(t.Blob.URL())
	res := Result{URL: url, Size: src.Size()}
	props, err := t.Blob.GetProperties(ctx, nil)
	exists := err == nil
	if err != nil && !isNotFound(err) {
		return res, fmt.Errorf("blob %s: %w", url, err)
	}
	var present []sparse.Extent
	change := ""
	if exists {
		var size int64
		if props.ContentLength != nil {
			size = *props.ContentLength
		}
		pending := meta(props.Metadata, MetaPending)
		switch {
		case props.BlobType != nil && *props.BlobType != blob.BlobTypePageBlob:
			// An image version is made from a page blob only ("The VHD
			// must be a page blob": Azure Compute Gallery, create an image
			// version from a VHD in a storage account); a block blob of
			// the same bytes and Content-MD5 is no source.
			if !o.Overwrite {
				return res, &ExistsError{url, fmt.Sprintf("is a %s, where an image version needs a page blob", *props.BlobType), o.OverwriteOption}
			}
			exists, change = false, "overwritten"
		case size != src.Size():
			if !o.Overwrite {
				return res, &ExistsError{url, fmt.Sprintf("holds %d bytes where %s makes %d", size, src.Name(), src.Size()), o.OverwriteOption}
			}
			exists, change = false, "overwritten"
		case pending != "" && pending != pendingMarker(src):
			if !o.Overwrite {
				return res, &ExistsError{url, fmt.Sprintf("is an unfinished upload of another input (marker %q, %s gives %q)", pending, src.Name(), pendingMarker(src)), o.OverwriteOption}
			}
			exists, change = false, "overwritten"
		case pending != "":
			if err := adoptFooter(ctx, t, src); err != nil {
				return res, err
			}
			if present, err = pageRanges(ctx, t); err != nil {
				return res, err
			}
			res.Resumed, change = true, "resumed"
			o.Logf("resuming the unfinished upload of %s: %d bytes of pages present", url, sparse.DataBytes(present))
		case len(props.ContentMD5) != md5.Size:
			if !o.Overwrite {
				return res, &ExistsError{url, "has no Content-MD5 to prove it identical", o.OverwriteOption}
			}
			exists, change = false, "overwritten"
		default:
			if err := adoptFooter(ctx, t, src); err != nil {
				return res, err
			}
			sum, err := pass(ctx, t, src, o, nil, false, &res)
			if err != nil {
				return res, err
			}
			if bytes.Equal(sum, props.ContentMD5) {
				res.Reused, res.MD5, res.MD5Hex = true, sum, hex.EncodeToString(sum)
				o.Logf("%s already holds this disk (MD5 %s); not uploaded again", url, res.MD5Hex)
				return res, nil
			}
			if !o.Overwrite {
				return res, &ExistsError{url, fmt.Sprintf("has Content-MD5 %s where %s gives %s", hex.EncodeToString(props.ContentMD5), src.Name(), hex.EncodeToString(sum)), o.OverwriteOption}
			}
			exists, change = false, "overwritten"
		}
	}
	if change != "" && o.BeforeChange != nil {
		if err := o.BeforeChange(change); err != nil {
			return res, err
		}
	}
	res.Replaced = change == "overwritten"
	if !exists {
		if err := create(ctx, t, src, o, props.ETag != nil); err != nil {
			return res, err
		}
	}
	sum, err := pass(ctx, t, src, o, present, true, &res)
	if err != nil {
		return res, err
	}
	res.MD5, res.MD5Hex = sum, hex.EncodeToString(sum)
	if _, err := t.Blob.SetHTTPHeaders(ctx, blob.HTTPHeaders{BlobContentMD5: sum, BlobContentType: ptr("application/octet-stream")}, nil); err != nil {
		return res, fmt.Errorf("set Content-MD5 of %s: %w", url, err)
	}
	md := map[string]*string{MetaMD5: ptr(res.MD5Hex)}
	for k, v := range o.Metadata {
		md[k] = ptr(v)
	}
	if _, err := t.Blob.SetMetadata(ctx, md, nil); err != nil {
		return res, fmt.Errorf("mark %s complete: %w", url, err)
	}
	return res, nil
}

func ptr[T any](v T) *T { return &v }

func meta(m map[string]*string, key string) string {
	for k, v := range m {
		if strings.EqualFold(k, key) && v != nil {
			return *v
		}
	}
	return ""
}

func pendingMarker(src *Source) string { return "pending:" + src.fingerprint() }

func isNotFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == 404
}

// create makes a fresh blob of the source's size, marked pending. Without
// replace it fails if a blob appeared meanwhile.
func create(ctx context.Context, t Target, src *Source, o Options, replace bool) error {
	opts := &azpageblob.CreateOptions{Metadata: map[string]*string{MetaPending: ptr(pendingMarker(src))}}
	if !replace {
		opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: ptr(azcore.ETagAny)}}
	}
	_, err := t.Blob.Create(ctx, src.Size(), opts)
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		if t.Container == nil {
			return fmt.Errorf("create blob %s: its container does not exist; create it or set %s: %w", URLWithoutQuery(t.Blob.URL()), o.CreateContainerOption, err)
		}
		o.Logf("creating container %s", URLWithoutQuery(t.Container.URL()))
		if _, cerr := t.Container.Create(ctx, nil); cerr != nil && !bloberror.HasCode(cerr, bloberror.ContainerAlreadyExists) {
			return fmt.Errorf("create container %s: %w", URLWithoutQuery(t.Container.URL()), cerr)
		}
		_, err = t.Blob.Create(ctx, src.Size(), opts)
	}
	if bloberror.HasCode(err, bloberror.BlobAlreadyExists) {
		// A retried Create whose first try succeeded finds its own blob.
		if p, perr := t.Blob.GetProperties(ctx, nil); perr == nil && meta(p.Metadata, MetaPending) == pendingMarker(src) &&
			p.ContentLength != nil && *p.ContentLength == src.Size() {
			return nil
		}
		return &ExistsError{URLWithoutQuery(t.Blob.URL()), "appeared while this upload started", o.OverwriteOption}
	}
	if err != nil {
		return fmt.Errorf("create blob %s: %w", URLWithoutQuery(t.Blob.URL()), err)
	}
	return nil
}

// adoptFooter makes a raw source's in-memory footer the one already in
// the blob, when that one describes the same disk: the footer's timestamp
// and unique id are not content, and keeping them makes a re-run produce
// the same bytes (and MD5) as the first.
func adoptFooter(ctx context.Context, t Target, src *Source) error {
	if !src.IsRaw() {
		return nil
	}
	b, err := download(ctx, t, src.Size()-vhd.FooterSize, vhd.FooterSize)
	if err != nil {
		return fmt.Errorf("read the footer of %s: %w", URLWithoutQuery(t.Blob.URL()), err)
	}
	src.useFooter(b)
	return nil
}

func download(ctx context.Context, t Target, off, n int64) ([]byte, error) {
	resp, err := t.Blob.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: off, Count: n}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(resp.Body, b); err != nil {
		return nil, err
	}
	return b, nil
}

// pageRanges lists the pages present in the blob, merged.
func pageRanges(ctx context.Context, t Target) ([]sparse.Extent, error) {
	var out []sparse.Extent
	pager := t.Blob.NewGetPageRangesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list the pages of %s: %w", URLWithoutQuery(t.Blob.URL()), err)
		}
		for _, r := range page.PageRange {
			if r.Start != nil && r.End != nil {
				out = append(out, sparse.Extent{Off: *r.Start, Len: *r.End - *r.Start + 1})
			}
		}
	}
	return merge(out), nil
}

// chunk is one window of the blob read into a pooled buffer, shared by
// the hasher and the Put Page jobs cut from it; the last to release it
// returns the buffer and counts the window done.
type chunk struct {
	buf  []byte
	off  int64
	refs atomic.Int32
}

type job struct {
	c     *chunk
	r     sparse.Extent
	clear bool
	// sum is the run's MD5 for its Put Page, computed by the reader.
	sum [md5.Size]byte
}

// data is the run's bytes in its chunk.
func (j job) data() []byte { return j.c.buf[j.r.Off-j.c.off : j.r.End()-j.c.off] }

type hashItem struct {
	c     *chunk
	zeros int64
}

type progress struct {
	mu    sync.Mutex
	done  int64
	total int64
	fn    func(done, total int64)
}

func (p *progress) add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if p.fn != nil {
		p.fn(p.done, p.total)
	}
}

// pass reads the source once, in order: a hasher goroutine MD5s every
// byte (zeros for holes without reading them) while, with send, the
// non-zero pages go out in parallel Put Page requests. Pages wholly in
// present are checked against the blob instead of sent; present pages
// that should be zero are cleared. It returns the blob's MD5.
func pass(ctx context.Context, t Target, src *Source, o Options, present []sparse.Extent, send bool, res *Result) ([]byte, error) {
	g, gctx := errgroup.WithContext(ctx)
	nbuf := min(o.Parallel+4, 24)
	pool := make(chan []byte, nbuf)
	for range nbuf {
		pool <- make([]byte, MaxPutPage)
	}
	prog := &progress{total: src.Size(), fn: o.Progress}
	release := func(c *chunk) {
		if c.refs.Add(-1) == 0 {
			pool <- c.buf[:cap(c.buf)]
			prog.add(int64(len(c.buf)))
		}
	}
	hashq := make(chan hashItem, nbuf+1)
	jobs := make(chan job, 2*o.Parallel)
	h := md5.New()

	// The hasher: the long pole, so it never waits for the network.
	g.Go(func() error {
		for it := range hashq {
			if it.c != nil {
				h.Write(it.c.buf)
				release(it.c)
				continue
			}
			for n := it.zeros; n > 0; {
				c := min(n, int64(len(zeroPage)))
				h.Write(zeroPage[:c])
				n -= c
				if gctx.Err() != nil {
					break
				}
			}
			prog.add(it.zeros)
		}
		return nil
	})
	var sent, reqs, verified, cleared atomic.Int64
	for range o.Parallel {
		g.Go(func() error {
			for j := range jobs {
				err := j.run(gctx, t, present, &sent, &reqs, &verified, &cleared)
				if j.c != nil {
					release(j.c)
				}
				if err != nil {
					// Keep draining so the reader and hasher never block.
					for j := range jobs {
						if j.c != nil {
							release(j.c)
						}
					}
					return err
				}
			}
			return nil
		})
	}
	// The reader.
	g.Go(func() error {
		defer close(jobs)
		defer close(hashq)
		var pos int64
		size := src.Size()
		clearIn := func(lo, hi int64, keep []sparse.Extent) error {
			for _, r := range splitMax(uncovered(present, lo, hi, keep), MaxPutPage) {
				select {
				case jobs <- job{r: r, clear: true}:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		}
		for _, e := range append(pageAlign(src.Extents(), size), sparse.Extent{Off: size}) {
			if gap := e.Off - pos; gap > 0 {
				hashq <- hashItem{zeros: gap}
				if err := clearIn(pos, e.Off, nil); err != nil {
					return err
				}
			}
			for off := e.Off; off < e.End(); {
				n := min(int64(MaxPutPage)-off%MaxPutPage, e.End()-off)
				var buf []byte
				select {
				case buf = <-pool:
				case <-gctx.Done():
					return gctx.Err()
				}
				c := &chunk{buf: buf[:n], off: off}
				if _, err := src.ReadAt(c.buf, off); err != nil {
					return err
				}
				var runs []sparse.Extent
				if send {
					runs = nonZeroRuns(c.buf, off)
				}
				c.refs.Store(int32(1 + len(runs)))
				hashq <- hashItem{c: c}
				for i, r := range runs {
					res.DataBytes += r.Len
					// The transactional MD5 is taken here rather than in
					// the workers: the hasher, the long pole, then shares
					// the CPUs with one busy goroutine of ours and not
					// with up to Parallel of them (BENCHMARKS.md, upload).
					// One goroutine hashes about 600 MB/s of data; Azure
					// targets up to 60 MiB/s into a single page blob.
					j := job{c: c, r: r}
					j.sum = md5.Sum(j.data())
					select {
					case jobs <- j:
					case <-gctx.Done():
						for range len(runs) - i {
							release(c)
						}
						return gctx.Err()
					}
				}
				if send {
					if err := clearIn(off, off+n, runs); err != nil {
						return err
					}
				}
				off += n
			}
			pos = e.End()
		}
		return nil
	})
	err := g.Wait()
	res.BytesSent += sent.Load()
	res.Requests += reqs.Load()
	res.Verified += verified.Load()
	res.Cleared += cleared.Load()
	if err != nil {
		return nil, fmt.Errorf("upload %s to %s: %w", src.Name(), URLWithoutQuery(t.Blob.URL()), err)
	}
	return h.Sum(nil), nil
}

var zeroPage = make([]byte, 256<<10)

func (j job) run(ctx context.Context, t Target, present []sparse.Extent, sent, reqs, verified, cleared *atomic.Int64) error {
	rng := blob.HTTPRange{Offset: j.r.Off, Count: j.r.Len}
	if j.clear {
		if _, err := t.Blob.ClearPages(ctx, rng, nil); err != nil {
			return fmt.Errorf("clear pages %d-%d: %w", j.r.Off, j.r.End()-1, err)
		}
		cleared.Add(j.r.Len)
		return nil
	}
	data := j.data()
	if covers(present, j.r) {
		have, err := download(ctx, t, j.r.Off, j.r.Len)
		if err != nil {
			return fmt.Errorf("check pages %d-%d already in the blob: %w", j.r.Off, j.r.End()-1, err)
		}
		if bytes.Equal(have, data) {
			verified.Add(j.r.Len)
			return nil
		}
	}
	_, err := t.Blob.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(data)), rng,
		&azpageblob.UploadPagesOptions{TransactionalValidation: blob.TransferValidationTypeMD5(j.sum[:])})
	if err != nil {
		return fmt.Errorf("put pages %d-%d: %w", j.r.Off, j.r.End()-1, err)
	}
	sent.Add(j.r.Len)
	reqs.Add(1)
	return nil
}
