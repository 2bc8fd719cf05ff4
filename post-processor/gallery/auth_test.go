package gallery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery/armfake"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// The secret in the tests' connection string; it may not appear in an error.
const (
	testAccountKey = "c2VjcmV0LWFjY291bnQta2V5LTEyMzQ=" // base64 "secret-account-key-1234"
)

// clearAzureEnv leaves no credential source configured: no environment
// credential, workload or managed identity settings, and Azure CLI and
// Azure Developer CLI configuration directories without a login.
func clearAzureEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
		"AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "AZURE_USERNAME", "AZURE_PASSWORD",
		"AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS", "AZURE_REGIONAL_AUTHORITY_NAME",
		"AZURE_ADDITIONALLY_ALLOWED_TENANTS", "IDENTITY_CLIENT_ID", "IDENTITY_ENDPOINT", "IDENTITY_HEADER",
		"IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	t.Setenv("AZURE_CONFIG_DIR", t.TempDir())
	t.Setenv("AZD_CONFIG_DIR", t.TempDir())
}

// publishToGallery runs the post-processor on a small raw disk with an
// explicit gallery destination and storage reached by a connection string
// (the Azure credential is then needed for Resource Manager only).
func publishToGallery(t *testing.T, extra map[string]interface{}, setup func(*PostProcessor)) error {
	t.Helper()
	raw := testutil.SparseFile(t, filepath.Join(t.TempDir(), "disk.raw"), 1<<20, map[int64][]byte{0: []byte("x")})
	in := &artifact.Artifact{Builder: "packer.file", Variant: variant.Variant{Key: "k", Arch: "x86_64"},
		Outputs: []artifact.File{{Path: raw, Role: artifact.RoleDisk}}}
	cfg := map[string]interface{}{
		"storage_connection_string": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + testAccountKey +
			";BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;",
		"shared_image_gallery_destination": map[string]interface{}{"subscription": "sub1", "resource_group": "rg1",
			"gallery_name": "gal1", "image_name": "def", "image_version": "1.2.3"},
	}
	for k, v := range extra {
		cfg[k] = v
	}
	p, err := configure(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(p)
	}
	_, _, _, err = p.PostProcess(context.Background(), packersdk.TestUi(t), in)
	if err == nil {
		t.Fatal("published without a working credential")
	}
	if strings.Contains(err.Error(), testAccountKey) {
		t.Fatalf("the account key given in the config appears in the error: %v", err)
	}
	return err
}

func TestNoCredentialConfiguredSaysWhichSourcesWereTried(t *testing.T) {
	clearAzureEnv(t)
	// The whole chain: where the instance metadata service answers (as a
	// proxy here does, 403), managed identity fails and ends the chain;
	// elsewhere every source is unavailable.
	err := publishToGallery(t, nil, nil)
	for _, want := range []string{"no Azure credential worked (tried environment (AZURE_CLIENT_ID", "managed identity, Azure CLI",
		"DefaultAzureCredential", "EnvironmentCredential"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestAnUnavailableCredentialIsRecognisedByTypeNotText(t *testing.T) {
	clearAzureEnv(t)
	// Only the environment source, which has nothing: azidentity's
	// unexported "credential unavailable" error, no AuthenticationFailedError.
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
	err := publishToGallery(t, nil, nil)
	if errors.As(err, new(*azidentity.AuthenticationFailedError)) {
		t.Fatalf("not the unavailable case: %v", err)
	}
	if !strings.Contains(err.Error(), "no Azure credential worked (tried environment (AZURE_CLIENT_ID") ||
		!strings.Contains(err.Error(), "missing environment variable") {
		t.Fatalf("got %v", err)
	}
}

func TestAFailedTokenRequestIsACredentialErrorAndAResourceManagerErrorIsNot(t *testing.T) {
	cred := &azfake.TokenCredential{}
	cred.SetError(errors.New("token refused"))
	err := publishToGallery(t, nil, func(p *PostProcessor) {
		p.armTransport, p.credential = armfake.New().Transport(), cred
	})
	if !strings.Contains(err.Error(), "no Azure credential worked (tried test credential)") || !strings.Contains(err.Error(), "token refused") {
		t.Fatalf("failed token: %v", err)
	}

	missing := armfake.New()
	missing.Location = "" // the gallery does not exist: 404
	err = publishToGallery(t, nil, func(p *PostProcessor) {
		p.armTransport, p.credential = missing.Transport(), &azfake.TokenCredential{}
	})
	if strings.Contains(err.Error(), "credential") || !strings.Contains(err.Error(), "read gallery /subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Compute/galleries/gal1") {
		t.Fatalf("missing gallery: %v", err)
	}
}

func TestCredentialFailureLeavesOtherErrorsAlone(t *testing.T) {
	plain := errors.New("plain")
	if got := credentialFailure(plain, "x"); got != plain {
		t.Fatalf("plain error changed: %v", got)
	}
	tok := &tokenError{errors.New("boom")}
	got := credentialFailure(errors.Join(errors.New("ctx"), tok), "env, cli")
	if !errors.Is(got, tok) || !strings.HasPrefix(got.Error(), "no Azure credential worked (tried env, cli): ") {
		t.Fatalf("token error: %v", got)
	}
}
