package pageblob

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/sparse"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/internal/vhd"
)

func TestUploadSendsOnlyNonZeroPagesOfASparse2GiBDiskAndTheBlobMatches(t *testing.T) {
	t.Parallel()
	az := testsvc.StartAzurite(t)
	dir := t.TempDir()
	const size = 2<<30 - 1000 // not a whole MiB: padding and footer follow
	withZeroPage := randBytes(5, 64<<10)
	clear(withZeroPage[16<<10 : 16<<10+512]) // a zero page inside data
	raw := testutil.SparseFile(t, filepath.Join(dir, "disk.raw"), size, map[int64][]byte{
		0:            randBytes(1, 3*512),
		1<<20 + 100:  randBytes(2, 10<<10),     // unaligned
		4<<20 - 2048: randBytes(3, 8<<10),      // across a 4 MiB window
		100 << 20:    randBytes(4, 6<<20+4096), // longer than one Put Page
		500 << 20:    withZeroPage,
		3 << 29:      randBytes(6, 512),
		size - 300:   randBytes(7, 300), // the page that holds the end of the disk
	})
	src, err := OpenRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.Size() != 2<<30+512 {
		t.Fatalf("blob size %d, want 2 GiB + 512", src.Size())
	}
	tg := target(t, az, "disks", "sparse.vhd", true)
	counter := &putCounter{}
	tgCounted := target(t, az, "disks", "sparse.vhd", true, counter)
	var mu sync.Mutex
	var calls [][2]int64
	start := time.Now()
	res, err := Upload(context.Background(), tgCounted, src, Options{Parallel: 4, Progress: func(d, tot int64) {
		mu.Lock()
		calls = append(calls, [2]int64{d, tot})
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("upload took %s", time.Since(start))
	want := nonZeroPages(t, src)
	if res.BytesSent != want || res.DataBytes != want || counter.bytes.Load() != want {
		t.Errorf("sent %d bytes (wire %d, data %d), want exactly the %d bytes of non-zero pages", res.BytesSent, counter.bytes.Load(), res.DataBytes, want)
	}
	if counter.n.Load() != res.Requests {
		t.Errorf("%d Put Page requests on the wire, result says %d", counter.n.Load(), res.Requests)
	}
	for _, r := range presentRanges(t, tg) {
		if r.Len > 0 && r.Off <= 500<<20+16<<10 && r.End() >= 500<<20+16<<10+512 {
			t.Errorf("the zero page inside data was written: present range %+v", r)
		}
	}
	if got := sparse.DataBytes(presentRanges(t, tg)); got != want {
		t.Errorf("blob has %d bytes of pages, want %d", got, want)
	}
	start = time.Now()
	expectMatches(t, tg, src, res.MD5)
	t.Logf("download and compare took %s", time.Since(start))
	ft, err := src.Footer()
	if err != nil {
		t.Fatal(err)
	}
	if f, err := vhd.Decode(ft); err != nil || f.CurrentSize != 2<<30 {
		t.Fatalf("footer %+v, %v", f, err)
	}
	if len(calls) == 0 || calls[len(calls)-1] != [2]int64{src.Size(), src.Size()} {
		t.Fatalf("last progress %v, want done = total = %d", calls[len(calls)-1:], src.Size())
	}
	for i := 1; i < len(calls); i++ {
		if calls[i][0] < calls[i-1][0] {
			t.Fatalf("progress went backwards: %v then %v", calls[i-1], calls[i])
		}
	}
}

func TestUploadOfAFixedVHDWithDataInItsLastPageOnly(t *testing.T) {
	t.Parallel()
	az := testsvc.StartAzurite(t)
	dir := t.TempDir()
	const size = 256 << 20
	raw := testutil.SparseFile(t, filepath.Join(dir, "disk.raw"), size, map[int64][]byte{size - 512: randBytes(8, 512)})
	vhdPath := filepath.Join(dir, "disk.vhd")
	if _, err := vhd.Convert(context.Background(), raw, vhdPath, vhd.Options{}); err != nil {
		t.Fatal(err)
	}
	src, err := OpenVHD(vhdPath)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tg := target(t, az, "disks", "last.vhd", true)
	res, err := Upload(context.Background(), tg, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The last data page and the footer page.
	if res.BytesSent != 1024 || res.Requests != 2 {
		t.Errorf("sent %d bytes in %d requests, want 1024 in 2 (last data page, footer)", res.BytesSent, res.Requests)
	}
	expectMatches(t, tg, src, res.MD5)
	if !bytes.Equal(res.MD5, md5Of(t, src)) {
		t.Fatal("result MD5 differs from the MD5 of the VHD file")
	}
}

func smallDisk(t *testing.T, dir string, seed uint64) string {
	return testutil.SparseFile(t, filepath.Join(dir, "small.raw"), 24<<20+7, map[int64][]byte{
		0:        randBytes(seed, 4096),
		9 << 20:  randBytes(seed+1, 3<<20),
		24 << 20: randBytes(seed+2, 7),
	})
}

func TestUploadReusesAnIdenticalBlobAndRefusesADifferentOne(t *testing.T) {
	t.Parallel()
	az := testsvc.StartAzurite(t)
	dir := t.TempDir()
	raw := smallDisk(t, dir, 10)
	tg := target(t, az, "disks", "small.vhd", true)
	ctx := context.Background()
	src, _ := OpenRaw(raw)
	first, err := Upload(ctx, tg, src, Options{})
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	// A fresh source has another footer id; the blob's is adopted, so the
	// bytes and MD5 are the same and nothing is sent.
	src, _ = OpenRaw(raw)
	again, err := Upload(ctx, tg, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Reused || again.BytesSent != 0 || !bytes.Equal(again.MD5, first.MD5) {
		t.Fatalf("second upload: reused=%v sent=%d md5 %x vs %x", again.Reused, again.BytesSent, again.MD5, first.MD5)
	}
	expectMatches(t, tg, src, first.MD5)
	src.Close()

	// Change one byte of the disk: the blob differs and stays untouched.
	f, _ := os.OpenFile(raw, os.O_WRONLY, 0)
	f.WriteAt([]byte{0x42}, 9<<20+5)
	f.Close()
	src, _ = OpenRaw(raw)
	defer src.Close()
	_, err = Upload(ctx, tg, src, Options{OverwriteOption: "overwrite_blob = true"})
	var ee *ExistsError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "overwrite_blob = true") || !strings.Contains(err.Error(), "Content-MD5") {
		t.Fatalf("want an ExistsError naming overwrite_blob, got %v", err)
	}
	p, _ := tg.Blob.GetProperties(ctx, nil)
	if !bytes.Equal(p.ContentMD5, first.MD5) {
		t.Fatal("the existing blob changed although overwrite was not asked")
	}
	// BeforeChange decides before the blob is touched.
	stop := errors.New("versions use this blob")
	if _, err := Upload(ctx, tg, src, Options{Overwrite: true, BeforeChange: func(string) error { return stop }}); !errors.Is(err, stop) {
		t.Fatalf("BeforeChange's error: %v", err)
	}
	if p, _ := tg.Blob.GetProperties(ctx, nil); !bytes.Equal(p.ContentMD5, first.MD5) {
		t.Fatal("the blob changed although BeforeChange refused")
	}
	var how []string
	third, err := Upload(ctx, tg, src, Options{Overwrite: true, BeforeChange: func(h string) error { how = append(how, h); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if third.Reused || !third.Replaced || first.Replaced || again.Replaced || bytes.Equal(third.MD5, first.MD5) || strings.Join(how, ",") != "overwritten" {
		t.Fatalf("overwrite did not upload: %+v, BeforeChange %v", third, how)
	}
	expectMatches(t, tg, src, third.MD5)
}

func TestUploadRefusesABlobOfAnotherSizeOrWithoutMD5(t *testing.T) {
	t.Parallel()
	az := testsvc.StartAzurite(t)
	dir := t.TempDir()
	src, err := OpenRaw(smallDisk(t, dir, 20))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	tg := target(t, az, "disks", "other.vhd", true)
	mustCreateContainer(t, tg)
	if _, err := tg.Blob.Create(ctx, 1<<20, nil); err != nil {
		t.Fatal(err)
	}
	_, err = Upload(ctx, tg, src, Options{OverwriteOption: "overwrite_blob"})
	if !strings.Contains(err.Error(), "holds 1048576 bytes") || !strings.Contains(err.Error(), "overwrite_blob") {
		t.Fatalf("got %v", err)
	}
	if _, err := tg.Blob.Create(ctx, src.Size(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err = Upload(ctx, tg, src, Options{}); !strings.Contains(err.Error(), "no Content-MD5") {
		t.Fatalf("got %v", err)
	}
	res, err := Upload(ctx, tg, src, Options{Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	expectMatches(t, tg, src, res.MD5)
}

func TestUploadCreatesAMissingContainerOnlyWhenAllowed(t *testing.T) {
	t.Parallel()
	az := testsvc.StartAzurite(t)
	src, err := OpenRaw(smallDisk(t, t.TempDir(), 30))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	_, err = Upload(ctx, target(t, az, "missing", "a.vhd", false), src, Options{CreateContainerOption: "create_container = true"})
	if err == nil || !strings.Contains(err.Error(), "container does not exist") || !strings.Contains(err.Error(), "create_container = true") {
		t.Fatalf("got %v", err)
	}
	tg := target(t, az, "missing", "a.vhd", true)
	res, err := Upload(ctx, tg, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	expectMatches(t, tg, src, res.MD5)
}

func TestOpenRejectsDisksAzureCannotTake(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	unaligned := testutil.SparseFile(t, filepath.Join(dir, "u.vhd"), 3<<20, nil)
	ft, _ := vhd.NewFixed(3<<20, timeZero)
	ft.CurrentSize, ft.OriginalSize = 3<<20-512, 3<<20-512
	b := ft.Marshal()
	f, _ := os.OpenFile(unaligned, os.O_WRONLY, 0)
	f.Truncate(3<<20 - 512)
	f.WriteAt(b[:], 3<<20-512)
	f.Close()
	if _, err := OpenVHD(unaligned); err == nil || !strings.Contains(err.Error(), "not a whole number of MiB") {
		t.Errorf("unaligned VHD: %v", err)
	}
	raw := testutil.SparseFile(t, filepath.Join(dir, "r.raw"), 1<<20, nil)
	if _, err := OpenVHD(raw); err == nil || !strings.Contains(err.Error(), "not a fixed VHD") {
		t.Errorf("raw as VHD: %v", err)
	}
	huge := testutil.SparseFile(t, filepath.Join(dir, "h.raw"), MaxSize+1, nil)
	if _, err := OpenRaw(huge); err == nil || !strings.Contains(err.Error(), "1,023 GiB") || !strings.Contains(err.Error(), "1047553 MiB") {
		t.Errorf("huge raw: %v", err)
	}
	ok := testutil.SparseFile(t, filepath.Join(dir, "ok.raw"), MaxSize, nil)
	s, err := OpenRaw(ok)
	if err != nil {
		t.Fatalf("1,023 GiB raw: %v", err)
	}
	s.Close()
	empty := testutil.SparseFile(t, filepath.Join(dir, "e.raw"), 0, nil)
	if _, err := OpenRaw(empty); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty raw: %v", err)
	}
}
