// Package signing signs what the plugin publishes so that consumers verify
// it with cosign and a public key: detached blob signatures as
// `cosign sign-blob` writes them (base64 of an ASN.1 ECDSA signature over
// the SHA-256 of the content; `cosign verify-blob --key K --signature S`),
// and the simple-signing payload `cosign verify --key K` checks for an
// image manifest. Keys are cosign's (`cosign generate-key-pair`, encrypted
// with a password) or plain PEM private keys (PKCS#8 or SEC 1 EC, PKCS#8
// Ed25519 is refused: cosign's blob signatures over Ed25519 need its own
// hashing rules). Key material is never part of an error.
//
// Keyless (OIDC, Fulcio and Rekor) signing can come later behind the same
// Signer: it changes where the certificate comes from, not what is signed.
package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// PEM types of cosign's encrypted private keys (v2 and v1).
const (
	pemSigstore = "ENCRYPTED SIGSTORE PRIVATE KEY"
	pemCosign   = "ENCRYPTED COSIGN PRIVATE KEY"
)

// Signer signs with one private key.
type Signer struct {
	key *ecdsa.PrivateKey
}

// ErrPassword: an encrypted key and a wrong (or no) password.
var ErrPassword = errors.New("wrong password for the encrypted signing key")

// Load reads a private key in PEM: cosign's encrypted key (with
// password), or an unencrypted PKCS#8 or SEC 1 ("EC PRIVATE KEY") ECDSA
// key. what names the key's source (a file, an environment variable) in
// errors.
func Load(what string, pemBytes, password []byte) (*Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("signing key %s: no PEM block; expected a cosign key (cosign generate-key-pair) or a PEM private key", what)
	}
	der := block.Bytes
	switch block.Type {
	case pemSigstore, pemCosign:
		var err error
		der, err = encrypted.Decrypt(block.Bytes, password)
		if err != nil {
			if len(password) == 0 {
				return nil, fmt.Errorf("signing key %s is encrypted: give its password (COSIGN_PASSWORD or signing_key_password): %w", what, ErrPassword)
			}
			return nil, fmt.Errorf("signing key %s: %w", what, ErrPassword)
		}
	case "PRIVATE KEY", "EC PRIVATE KEY":
	default:
		return nil, fmt.Errorf("signing key %s: PEM block %q; expected %q, \"PRIVATE KEY\" or \"EC PRIVATE KEY\"", what, block.Type, pemSigstore)
	}
	var k any
	var err error
	if block.Type == "EC PRIVATE KEY" {
		k, err = x509.ParseECPrivateKey(der)
	} else {
		k, err = x509.ParsePKCS8PrivateKey(der)
	}
	if err != nil {
		return nil, fmt.Errorf("signing key %s: not a private key this plugin reads (%v)", what, errors.Unwrap(err))
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: a %T; expected an ECDSA key (cosign's default, P-256)", what, k)
	}
	return &Signer{key: ec}, nil
}

// SignBlob reads r to its end and returns the signature as cosign
// sign-blob prints it: base64 (standard encoding) of the ASN.1 ECDSA
// signature over the content's SHA-256.
func (s *Signer) SignBlob(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return s.signDigest(h.Sum(nil))
}

// SignBytes is SignBlob of b.
func (s *Signer) SignBytes(b []byte) (string, error) {
	d := sha256.Sum256(b)
	return s.signDigest(d[:])
}

// SignSHA256 signs content whose SHA-256 is known already (hex), as
// SignBlob of that content would: a caller that hashed a file while
// writing it need not read it again.
func (s *Signer) SignSHA256(hexDigest string) (string, error) {
	d, err := hex.DecodeString(hexDigest)
	if err != nil || len(d) != sha256.Size {
		return "", fmt.Errorf("sign: %q is not a hex SHA-256", hexDigest)
	}
	return s.signDigest(d)
}

func (s *Signer) signDigest(d []byte) (string, error) {
	sig, err := s.key.Sign(rand.Reader, d, crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// PublicKeyPEM is the public key as cosign.pub holds it ("PUBLIC KEY",
// PKIX).
func (s *Signer) PublicKeyPEM() []byte {
	der, _ := x509.MarshalPKIXPublicKey(&s.key.PublicKey) // an ECDSA key always marshals
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Verify checks a base64 signature of content with the public key in PEM,
// as cosign verify-blob does (for tests and for a check after signing).
func Verify(pubPEM []byte, content []byte, sigB64 string) error {
	block, _ := pem.Decode(pubPEM)
	if block == nil {
		return errors.New("no PEM public key")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return err
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("a %T public key; expected ECDSA", pub)
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	d := sha256.Sum256(content)
	if !ecdsa.VerifyASN1(ec, d[:], sig) {
		return errors.New("signature does not match the content")
	}
	return nil
}

// Image signatures, cosign's simple signing: the payload names the
// manifest's digest and the repository; the signature over the payload goes
// into an annotation of the layer holding it, in an image tagged
// sha256-<hex>.sig next to the signed manifest (cosign's tag scheme, which
// `cosign verify` reads).
const (
	PayloadMediaType    = "application/vnd.dev.cosign.simplesigning.v1+json"
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
)

// Payload is the simple-signing JSON for a manifest digest in repository
// (host/path, no tag).
func Payload(repository, manifestDigest string) []byte {
	var p struct {
		Critical struct {
			Identity struct {
				DockerReference string `json:"docker-reference"`
			} `json:"identity"`
			Image struct {
				DockerManifestDigest string `json:"docker-manifest-digest"`
			} `json:"image"`
			Type string `json:"type"`
		} `json:"critical"`
		Optional map[string]string `json:"optional"`
	}
	p.Critical.Identity.DockerReference = repository
	p.Critical.Image.DockerManifestDigest = manifestDigest
	p.Critical.Type = "cosign container image signature"
	b, _ := json.Marshal(p) // plain strings always marshal
	return b
}

// SignatureTag is the tag cosign looks for a manifest's signatures at:
// "sha256:abc..." -> "sha256-abc....sig".
func SignatureTag(manifestDigest string) string {
	return strings.Replace(manifestDigest, ":", "-", 1) + ".sig"
}
