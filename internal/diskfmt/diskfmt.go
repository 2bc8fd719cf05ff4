// Package diskfmt tells disk image formats apart by their bytes, not their
// names: a ".img" may be qcow2 and a ".vhd" may be a raw disk.
package diskfmt

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// Formats, named as qemu-img names them.
const (
	Raw   = "raw"
	QCOW2 = "qcow2"
	VMDK  = "vmdk"
	VHDX  = "vhdx"
	VPC   = "vpc" // VHD; fixed or dynamic
)

// Detect reads the magic numbers of the file at path. A file with the VHD
// cookie in its last 512 bytes (fixed) or first 512 (dynamic copy of the
// footer) is VPC; anything unrecognised is raw.
func Detect(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return DetectFile(f)
}

// DetectFile is Detect for an open file.
func DetectFile(f *os.File) (string, error) {
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", f.Name())
	}
	head := make([]byte, 512)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read %s: %w", f.Name(), err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		return QCOW2, nil
	case bytes.HasPrefix(head, []byte("vhdxfile")):
		return VHDX, nil
	case bytes.HasPrefix(head, []byte("KDMV")), bytes.HasPrefix(head, []byte("# Disk DescriptorFile")):
		return VMDK, nil
	case bytes.HasPrefix(head, []byte("conectix")):
		return VPC, nil
	}
	if st.Size() >= 512 {
		tail := make([]byte, 8)
		if _, err := f.ReadAt(tail, st.Size()-512); err != nil {
			return "", fmt.Errorf("read %s: %w", f.Name(), err)
		}
		if bytes.Equal(tail, []byte("conectix")) {
			return VPC, nil
		}
	}
	return Raw, nil
}
