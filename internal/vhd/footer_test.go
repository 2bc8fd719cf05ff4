package vhd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

func fixedFooter(t *testing.T) Footer {
	t.Helper()
	f, err := NewFixed(1025<<20, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	f.UniqueID = [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef, 0x80, 1, 2, 3, 4, 5, 6, 7}
	return f
}

func TestFooterEncodesAzureFields(t *testing.T) {
	f := fixedFooter(t)
	b := f.Marshal()
	be := binary.BigEndian
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"cookie", string(b[0:8]), "conectix"},
		{"features", be.Uint32(b[8:]), uint32(2)},
		{"version", be.Uint32(b[12:]), uint32(0x00010000)},
		{"data offset", be.Uint64(b[16:]), uint64(0xFFFFFFFFFFFFFFFF)},
		{"timestamp", be.Uint32(b[24:]), uint32(820638245)}, // 2026-01-02T03:04:05Z - 2000-01-01T00:00:00Z
		{"creator app", string(b[28:32]), "osim"},
		{"host os", string(b[36:40]), "Wi2k"},
		{"original size", be.Uint64(b[40:]), uint64(1025 << 20)},
		{"current size", be.Uint64(b[48:]), uint64(1025 << 20)},
		{"cylinders", be.Uint16(b[56:]), uint16(65535)},
		{"heads", b[58], uint8(16)},
		{"sectors", b[59], uint8(255)},
		{"disk type", be.Uint32(b[60:]), uint32(2)},
		// Summed independently (Python struct.pack of the same fields): one's complement of the byte sum of this
		// exact footer with the checksum bytes counted as zero.
		{"checksum", be.Uint32(b[64:]), uint32(0xffffe770)},
		{"saved state", b[84], uint8(0)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if !bytes.Equal(b[85:], make([]byte, 427)) {
		t.Error("reserved bytes are not zero")
	}
}

func TestFooterRoundTrips(t *testing.T) {
	f := fixedFooter(t)
	b := f.Marshal()
	g, err := Decode(b[:])
	if err != nil {
		t.Fatal(err)
	}
	if g != f {
		t.Fatalf("decoded %+v\nwant    %+v", g, f)
	}
	if !g.Time().Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("time = %v", g.Time())
	}
	// A 511-byte footer (pre-2004 writers) decodes too.
	if _, err := Decode(b[:511]); err != nil {
		t.Fatalf("511-byte footer: %v", err)
	}
}

func TestDecodeRejectsCorruptFooters(t *testing.T) {
	f := fixedFooter(t)
	good := f.Marshal()
	for _, tc := range []struct {
		name  string
		mut   func(b []byte)
		field string
	}{
		{"flipped size byte", func(b []byte) { b[50] ^= 1 }, "checksum"},
		{"bad checksum", func(b []byte) { b[67] ^= 0xff }, "checksum"},
		{"unknown disk type", func(b []byte) { b[63] = 9; fixSum(b) }, "disk type"},
		{"version 2", func(b []byte) { b[13] = 2; fixSum(b) }, "format version"},
		{"fixed with data offset", func(b []byte) { binary.BigEndian.PutUint64(b[16:], 512); fixSum(b) }, "data offset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := good
			tc.mut(b[:])
			_, err := Decode(b[:])
			var fe *FooterError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("err = %v, want a FooterError on %q", err, tc.field)
			}
		})
	}
	if _, err := Decode(make([]byte, 512)); !errors.Is(err, ErrNotVHD) {
		t.Fatalf("zeros: err = %v, want ErrNotVHD", err)
	}
}

func fixSum(b []byte) { binary.BigEndian.PutUint32(b[64:], checksum(b)) }

func TestCheckSizeEnforcesAzureRules(t *testing.T) {
	for size, ok := range map[int64]bool{
		0: false, -1: false, 1 << 20: true, 1<<20 + 512: false,
		MaxSize: true, MaxSize + Align: false,
	} {
		if err := CheckSize(size); (err == nil) != ok {
			t.Errorf("CheckSize(%d) = %v, want ok=%v", size, err, ok)
		}
	}
	if PaddedSize(1) != Align || PaddedSize(Align) != Align || PaddedSize(Align+1) != 2*Align {
		t.Error("PaddedSize does not round up to a MiB")
	}
}

func FuzzDecode(f *testing.F) {
	ft := Footer{}
	good := func() []byte { x, _ := NewFixed(64<<20, time.Unix(0, 0)); b := x.Marshal(); return b[:] }()
	f.Add(good)
	_ = ft
	f.Add(make([]byte, 512))
	f.Add([]byte("conectix"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Decode(b)
		if err != nil {
			return
		}
		// Anything that decodes re-encodes to bytes that decode to the same.
		enc := got.Marshal()
		again, err := Decode(enc[:])
		if err != nil {
			t.Fatalf("re-encoded footer does not decode: %v", err)
		}
		if again != got {
			t.Fatalf("round trip changed the footer:\n%+v\n%+v", got, again)
		}
	})
}

// The same identity gives the same id (a version 5 UUID), another identity
// another; no identity a random version 4 id.
func TestContentIdentityGivesAStableNameBasedUniqueID(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, _ := NewFixedFor(1<<20, at, "sha256:aa")
	b, _ := NewFixedFor(1<<20, at, "sha256:aa")
	c, _ := NewFixedFor(1<<20, at, "sha256:ab")
	if a.UniqueID != b.UniqueID || a.UniqueID == c.UniqueID || a.UniqueID != ContentID("sha256:aa") {
		t.Fatalf("ids %x %x %x", a.UniqueID, b.UniqueID, c.UniqueID)
	}
	if a.UniqueID[6]>>4 != 5 || a.UniqueID[8]>>6 != 2 {
		t.Fatalf("%x is not an RFC 4122 version 5 UUID", a.UniqueID)
	}
	if a.Marshal() != b.Marshal() {
		t.Fatal("the same size, time and identity must give the same footer bytes")
	}
	r1, _ := NewFixedFor(1<<20, at, "")
	r2, _ := NewFixed(1<<20, at)
	if r1.UniqueID == r2.UniqueID || r1.UniqueID[6]>>4 != 4 || r2.UniqueID[6]>>4 != 4 {
		t.Fatalf("random ids %x %x", r1.UniqueID, r2.UniqueID)
	}
	// Pinned, from Python's uuid.uuid5 of the same namespace and name: the
	// id of an identity never changes between releases, or a re-upload of
	// the same disk would differ in its footer.
	if got := ContentID("sha256:aa"); got != [16]byte{0x66, 0x12, 0x72, 0x2c, 0x33, 0x16, 0x55, 0x4d, 0xa2, 0x67, 0xf3, 0xbb, 0xbe, 0x15, 0xa3, 0xcc} {
		t.Fatalf("ContentID(sha256:aa) = %#v, want Python's uuid5", got)
	}
}
