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
