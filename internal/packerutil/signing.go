package packerutil

import (
	"errors"
	"fmt"
	"os"

	"github.com/osimage/packer-plugin-osimage/internal/signing"
)

// SigningConfig is the signing key of the components that sign what they
// write (embedded with `mapstructure:",squash"`).
type SigningConfig struct {
	// Path of the key to sign with: cosign's (`cosign generate-key-pair`,
	// encrypted with a password) or a PEM ECDSA private key. The signature
	// is what `cosign sign-blob` writes; consumers check it with `cosign
	// verify-blob --key cosign.pub --signature FILE.sig --insecure-ignore-tlog
	// FILE`. Defaults to none: nothing is signed.
	SigningKey string `mapstructure:"signing_key"`
	// Name of an environment variable that holds the key itself (PEM), for
	// CI secrets, instead of `signing_key`. Defaults to none.
	SigningKeyEnv string `mapstructure:"signing_key_env"`
	// Password of an encrypted key. Never printed. Defaults to the
	// environment variable `COSIGN_PASSWORD`, as cosign reads it.
	SigningKeyPassword string `mapstructure:"signing_key_password"`

	signer *signing.Signer
}

// PrepareSigning loads the key (call it from Configure: a bad key or
// password is an error at validate time, before anything is written).
func (c *SigningConfig) PrepareSigning() error {
	var pemBytes []byte
	var what string
	switch {
	case c.SigningKey != "" && c.SigningKeyEnv != "":
		return errors.New("signing_key and signing_key_env exclude each other: give the key one way")
	case c.SigningKey != "":
		b, err := os.ReadFile(c.SigningKey)
		if err != nil {
			return fmt.Errorf("signing_key: %w", err)
		}
		pemBytes, what = b, c.SigningKey
	case c.SigningKeyEnv != "":
		v, ok := os.LookupEnv(c.SigningKeyEnv)
		if !ok || v == "" {
			return fmt.Errorf("signing_key_env: the environment variable %s is not set", c.SigningKeyEnv)
		}
		pemBytes, what = []byte(v), "$"+c.SigningKeyEnv
	default:
		return nil
	}
	password := c.SigningKeyPassword
	if password == "" {
		password = os.Getenv("COSIGN_PASSWORD")
	}
	s, err := signing.Load(what, pemBytes, []byte(password))
	if err != nil {
		return err
	}
	c.signer = s
	return nil
}

// Signer is the loaded key; nil when nothing is to be signed.
func (c *SigningConfig) Signer() *signing.Signer { return c.signer }
