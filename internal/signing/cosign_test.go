package signing

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// cosign is the real cosign (tools/sign, built by make tools).
func cosign(t *testing.T) string {
	t.Helper()
	return testutil.NeedBuilt(t, "cosign")
}

func runCosign(t *testing.T, bin, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{"HOME=" + dir, "COSIGN_YES=true"}, env...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A key cosign made, loaded with its password, signs blobs that
// `cosign verify-blob` accepts with cosign's public key; a changed blob
// fails verification.
func TestCosignVerifiesBlobSignaturesMadeWithItsOwnKey(t *testing.T) {
	bin := cosign(t)
	dir := t.TempDir()
	env := []string{"COSIGN_PASSWORD=correct horse"}
	if out, err := runCosign(t, bin, dir, env, "generate-key-pair"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	keyPEM, _ := os.ReadFile(filepath.Join(dir, "cosign.key"))
	s, err := Load(filepath.Join(dir, "cosign.key"), keyPEM, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load("cosign.key", keyPEM, []byte("wrong")); err == nil {
		t.Fatal("a wrong password loaded cosign's key")
	}
	blob := filepath.Join(dir, "disk.vhd")
	os.WriteFile(blob, []byte(strings.Repeat("fixed vhd data ", 1000)), 0o644)
	f, _ := os.Open(blob)
	sig, err := s.SignBlob(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(blob+".sig", []byte(sig), 0o644)
	verify := func(pub string) (string, error) {
		return runCosign(t, bin, dir, nil, "verify-blob", "--key", pub, "--signature", blob+".sig", "--insecure-ignore-tlog=true", blob)
	}
	if out, err := verify("cosign.pub"); err != nil {
		t.Fatalf("cosign verify-blob with cosign's public key: %v\n%s", err, out)
	}
	// Our PublicKeyPEM is a key cosign reads too.
	os.WriteFile(filepath.Join(dir, "ours.pub"), s.PublicKeyPEM(), 0o644)
	if out, err := verify("ours.pub"); err != nil {
		t.Fatalf("cosign verify-blob with PublicKeyPEM: %v\n%s", err, out)
	}
	os.WriteFile(blob, []byte("changed"), 0o644)
	if out, err := verify("cosign.pub"); err == nil {
		t.Fatalf("cosign verified a changed blob:\n%s", out)
	}
}
