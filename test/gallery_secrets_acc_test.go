package test

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/test/acc"
)

const uploadOnlyTemplate = acc.RequiredPlugins + `
variable "raw" { type = string }
variable "out" { type = string }
variable "endpoint" { type = string }
variable "sas" {
  type      = string
  sensitive = true
}
variable "connection_string" {
  type      = string
  sensitive = true
}

source "file" "disk" {
  source = var.raw
  target = "${var.out}/disk.raw"
}

build {
  sources = ["source.file.disk"]
  post-processor "osimage-gallery" {
    blob_endpoint             = var.endpoint
    storage_sas_token         = var.sas
    storage_connection_string = var.connection_string
    blob_name                 = "d.vhd"
    max_retries               = 1
  }
}
`

// A SAS shaped like a real one, its signature full of the characters URL
// encoding changes.
const accSAS = "sv=2026-12-06&se=2099-01-01T00%3A00%3A00Z&sr=c&sp=racwdl&skoid=0b1c2d3e-4f5a-oid&sig=Zx%2Bq9%2Fr8S7t6U5v4W3x2Y1z0aBcDeFgHiJkLmN%3D"

func TestAFailedUploadPrintsNoSASEvenInPackersLog(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String() + "/devstoreaccount1"
	l.Close() // nothing listens there: every request fails in the transport
	raw := testutil.SparseFile(t, filepath.Join(dir, "in.raw"), 4<<20, map[int64][]byte{0: []byte("boot")})
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	acc.WriteTemplate(t, dir, "upload.pkr.hcl", uploadOnlyTemplate)
	q, _ := url.ParseQuery(accSAS)
	leaks := []string{accSAS, "sig=" + url.QueryEscape(q.Get("sig")), q.Get("sig"), url.QueryEscape(q.Get("sig")), q.Get("skoid"), "sp=racwdl"}
	for _, vars := range [][]string{
		{"-var", "endpoint=" + endpoint, "-var", "sas=?" + accSAS, "-var", "connection_string="},
		{"-var", "endpoint=", "-var", "sas=", "-var", "connection_string=BlobEndpoint=" + endpoint + ";SharedAccessSignature=" + accSAS},
	} {
		r := env.Run(t, dir, []string{"PACKER_LOG=1"}, append(append([]string{"build", "-var", "raw=" + raw, "-var", "out=" + out}, vars...), ".")...)
		if r.Err == nil || !strings.Contains(r.Output(), "connection refused") {
			t.Fatalf("want a failed upload:\n%s", r.Output())
		}
		for _, leak := range leaks {
			if strings.Contains(r.Output(), leak) {
				t.Errorf("packer's output (PACKER_LOG=1) holds %q of the SAS", leak)
			}
		}
		if !strings.Contains(r.Output(), strings.TrimPrefix(endpoint, "http://")+"/osimage/d.vhd") {
			t.Errorf("the error no longer names the blob:\n%s", r.Output())
		}
	}
}
