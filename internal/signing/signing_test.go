package signing

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// keyForms are the same key as each accepted PEM form (the encrypted one
// as cosign generate-key-pair writes it: go-securesystemslib's scrypt and
// secretbox over PKCS#8).
func keyForms(t *testing.T, k *ecdsa.PrivateKey, password string) map[string][]byte {
	t.Helper()
	p8, _ := x509.MarshalPKCS8PrivateKey(k)
	sec1, _ := x509.MarshalECPrivateKey(k)
	enc, err := encrypted.Encrypt(p8, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{"pkcs8": pemOf("PRIVATE KEY", p8), "sec1": pemOf("EC PRIVATE KEY", sec1),
		"cosign": pemOf(pemSigstore, enc), "cosign v1": pemOf(pemCosign, enc)}
}

func TestEveryKeyFormSignsBlobsThatItsPublicKeyVerifies(t *testing.T) {
	k := ecKey(t)
	content := []byte("a disk image\x00\x01")
	for name, pemBytes := range keyForms(t, k, "s3cret") {
		s, err := Load(name, pemBytes, []byte("s3cret"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sig, err := s.SignBlob(strings.NewReader(string(content)))
		if err != nil {
			t.Fatal(err)
		}
		pub := s.PublicKeyPEM()
		if err := Verify(pub, content, sig); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := Verify(pub, append(content, 0), sig); err == nil {
			t.Fatalf("%s: a changed blob verifies", name)
		}
		other, _ := Load("other", keyForms(t, ecKey(t), "")["pkcs8"], nil)
		if err := Verify(other.PublicKeyPEM(), content, sig); err == nil {
			t.Fatalf("%s: another key verifies", name)
		}
		b, _ := s.SignBytes(content)
		if err := Verify(pub, content, b); err != nil {
			t.Fatalf("SignBytes: %v", err)
		}
		sum := sha256.Sum256(content)
		h, err := s.SignSHA256(hex.EncodeToString(sum[:]))
		if err != nil || Verify(pub, content, h) != nil {
			t.Fatalf("SignSHA256: %v", err)
		}
		if _, err := s.SignSHA256("abc"); err == nil {
			t.Fatal("SignSHA256 of a non-digest")
		}
	}
}

func TestKeyErrorsNameTheSourceAndNeverTheKey(t *testing.T) {
	k := ecKey(t)
	forms := keyForms(t, k, "right")
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsaP8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	for _, tc := range []struct {
		name     string
		pem      []byte
		password string
		want     string
		is       error
	}{
		{"wrong password", forms["cosign"], "wrong", "signing key env:KEY: wrong password", ErrPassword},
		{"no password", forms["cosign"], "", "is encrypted: give its password", ErrPassword},
		{"not PEM", []byte("hello"), "", "no PEM block", nil},
		{"other PEM", pemOf("CERTIFICATE", []byte{1}), "", `PEM block "CERTIFICATE"`, nil},
		{"broken DER", pemOf("PRIVATE KEY", []byte{1, 2, 3}), "", "not a private key", nil},
		{"RSA", pemOf("PRIVATE KEY", rsaP8), "", "expected an ECDSA key", nil},
	} {
		_, err := Load("env:KEY", tc.pem, []byte(tc.password))
		if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "right") || len(tc.pem) > 60 && strings.Contains(err.Error(), string(tc.pem[40:60])) {
			t.Errorf("%s: the error shows key material or the password: %v", tc.name, err)
		}
	}
}

func TestPayloadAndSignatureTagAreCosigns(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	var p map[string]any
	if err := json.Unmarshal(Payload("ghcr.io/o/os", d), &p); err != nil {
		t.Fatal(err)
	}
	c := p["critical"].(map[string]any)
	if c["type"] != "cosign container image signature" || c["image"].(map[string]any)["docker-manifest-digest"] != d ||
		c["identity"].(map[string]any)["docker-reference"] != "ghcr.io/o/os" {
		t.Fatalf("payload %v", p)
	}
	if got := SignatureTag(d); got != "sha256-"+strings.Repeat("ab", 32)+".sig" {
		t.Fatal(got)
	}
}
