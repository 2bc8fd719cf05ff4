package qemuimg

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

func TestReadProgressParsesCarriageReturnUpdates(t *testing.T) {
	var got []float64
	readProgress(strings.NewReader("    (0.00/100%)\r    (12.50/100%)\r    (100.00/100%)\r\n"), func(p float64) { got = append(got, p) })
	if len(got) != 3 || got[1] != 12.5 || got[2] != 100 {
		t.Fatalf("got %v", got)
	}
}

func TestToRawConvertsQcow2AndReportsProgress(t *testing.T) {
	bin := testutil.NeedTool(t, "qemu-img", "qemu-utils")
	dir := t.TempDir()
	raw := testutil.SparseFile(t, filepath.Join(dir, "a.raw"), 4<<20, map[int64][]byte{1 << 20: []byte("hello")})
	q := filepath.Join(dir, "a.qcow2")
	testutil.Run(t, bin, "convert", "-f", "raw", "-O", "qcow2", raw, q)
	var done, total int64
	out, err := ToRaw(context.Background(), bin, q, "qcow2", dir, func(d, tot int64) { done, total = d, tot })
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(out)
	a, _ := os.ReadFile(raw)
	b, _ := os.ReadFile(out)
	if string(a) != string(b) || done != total || total != 4<<20 {
		t.Fatalf("content equal=%v, progress %d/%d", string(a) == string(b), done, total)
	}
	if _, err := ToRaw(context.Background(), bin, raw, "qcow2", dir, nil); err == nil || !strings.Contains(err.Error(), "qemu-img") {
		t.Fatalf("a raw file read as qcow2: err = %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 1 {
		t.Fatalf("want only the converted file left, got %v", left)
	}
}

func TestLookFindsQemuImgByDefaultAndExplainsAMissingOne(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-utils")
	if p, err := Look(""); err != nil || filepath.Base(p) != "qemu-img" {
		t.Errorf("Look(\"\") = %q, %v; want the qemu-img on PATH", p, err)
	}
	if _, err := Look("no-such-qemu-img"); err == nil || !strings.Contains(err.Error(), "no-such-qemu-img not found: install qemu-img") {
		t.Errorf("Look of a missing binary: %v, want it to name the binary and how to install qemu-img", err)
	}
}

// qcow2Fixture writes a 4 MiB raw disk with data at 1 MiB and its qcow2
// conversion into dir.
func qcow2Fixture(t *testing.T, bin, dir string) (raw, qcow2 string) {
	raw = testutil.SparseFile(t, filepath.Join(dir, "a.raw"), 4<<20, map[int64][]byte{1 << 20: []byte("hello")})
	qcow2 = filepath.Join(dir, "a.qcow2")
	testutil.Run(t, bin, "convert", "-f", "raw", "-O", "qcow2", raw, qcow2)
	return raw, qcow2
}

func TestProgressFollowsQemuImgsPercentagesScaledToTheVirtualSize(t *testing.T) {
	bin := testutil.NeedTool(t, "qemu-img", "qemu-utils")
	dir := t.TempDir()
	_, q := qcow2Fixture(t, bin, dir)
	var calls [][2]int64
	out, err := ToRaw(context.Background(), bin, q, "qcow2", dir, func(d, tot int64) { calls = append(calls, [2]int64{d, tot}) })
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(out)
	full := 0
	for _, c := range calls {
		if c[1] != 4<<20 || c[0] < 0 || c[0] > c[1] {
			t.Fatalf("progress %v: want done within the virtual size 4 MiB", calls)
		}
		if c[0] == c[1] {
			full++
		}
	}
	// qemu-img prints (100.00/100%) itself before ToRaw's closing report.
	if full < 2 || calls[0][0] != 0 {
		t.Errorf("progress %v: want qemu-img's 0 %% and 100 %% lines reported as 0 and 4 MiB, then the closing report", calls)
	}
}

func TestConversionWithoutAProgressFunctionWorks(t *testing.T) {
	bin := testutil.NeedTool(t, "qemu-img", "qemu-utils")
	dir := t.TempDir()
	raw, q := qcow2Fixture(t, bin, dir)
	out, err := ToRaw(context.Background(), bin, q, "qcow2", dir, nil)
	if err != nil {
		t.Fatalf("ToRaw with nil progress: %v", err)
	}
	a, _ := os.ReadFile(raw)
	b, _ := os.ReadFile(out)
	if string(a) != string(b) {
		t.Error("ToRaw with nil progress: content differs from the source")
	}
}

func TestConvertToRawWritesTheDestinationWholeOrNotAtAll(t *testing.T) {
	bin := testutil.NeedTool(t, "qemu-img", "qemu-utils")
	dir := t.TempDir()
	raw, q := qcow2Fixture(t, bin, dir)
	dst := filepath.Join(dir, "out.raw")
	if err := ConvertToRaw(context.Background(), bin, q, "qcow2", dst, nil); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(raw)
	b, err := os.ReadFile(dst)
	if err != nil || string(a) != string(b) {
		t.Fatalf("ConvertToRaw: dst %v, equal to the source %v", err, string(a) == string(b))
	}
	partial := filepath.Join(dir, ".bad.raw.partial")
	if err := ConvertToRaw(context.Background(), bin, raw, "qcow2", filepath.Join(dir, "bad.raw"), nil); err == nil {
		t.Error("ConvertToRaw of a raw file read as qcow2 succeeded")
	}
	if _, err := os.Lstat(filepath.Join(dir, "bad.raw")); err == nil {
		t.Error("a failed conversion left its destination")
	}
	if _, err := os.Lstat(partial); err == nil {
		t.Error("a failed conversion left its partial file")
	}
	busy := filepath.Join(dir, "busy")
	if err := os.MkdirAll(filepath.Join(busy, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := ConvertToRaw(context.Background(), bin, q, "qcow2", busy, nil); err == nil {
		t.Error("ConvertToRaw onto a non-empty directory succeeded")
	}
	if _, err := os.Lstat(filepath.Join(dir, ".busy.partial")); err == nil {
		t.Error("a conversion whose rename failed left its partial file")
	}
}

func TestReadProgressReportsEveryUpdateWhenLinesStartWithASeparator(t *testing.T) {
	var got []float64
	readProgress(strings.NewReader("\r(10.00/100%)\r\n(20.00/100%)\r\n\r(30.00/100%)"), func(p float64) { got = append(got, p) })
	if len(got) != 3 || got[0] != 10 || got[1] != 20 || got[2] != 30 {
		t.Errorf("percentages %v, want [10 20 30]: an empty line between updates must not hide the updates", got)
	}
}
