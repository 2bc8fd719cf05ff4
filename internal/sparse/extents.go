// Package sparse finds the data extents of files and copies them without
// touching holes: the building block for every disk conversion and upload in
// this plugin. It knows nothing about disk formats.
package sparse

// Extent is a byte range [Off, Off+Len) of a file that may hold data.
type Extent struct {
	Off int64
	Len int64
}

// End returns the first offset after the extent.
func (e Extent) End() int64 { return e.Off + e.Len }

// DataBytes is the sum of the extents' lengths.
func DataBytes(ext []Extent) int64 {
	var n int64
	for _, e := range ext {
		n += e.Len
	}
	return n
}

// IsZero reports whether b holds only zero bytes.
func IsZero(b []byte) bool {
	// Compare eight bytes at a time; the compiler turns this into wide loads.
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
