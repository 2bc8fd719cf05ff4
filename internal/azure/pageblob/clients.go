package pageblob

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	azpageblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"
)

// ClientConfig says where the blob is and how to authenticate. Exactly one
// of ConnectionString, SAS and Credential is used, in that order.
type ClientConfig struct {
	// Endpoint is the account's blob endpoint, e.g.
	// https://acct.blob.core.windows.net or Azurite's
	// http://127.0.0.1:10000/devstoreaccount1. Unused with a connection
	// string, which carries its own.
	Endpoint              string
	Container, BlobName   string
	ConnectionString      string
	SAS                   string // a SAS token (query string) valid for the container
	Credential            azcore.TokenCredential
	Retry                 policy.RetryOptions
	Transport             policy.Transporter
	PerRetryPolicies      []policy.Policy
	AllowCredentialOnHTTP bool // send bearer tokens over http (local endpoints only)
	// CreateContainer gives the Target a container client that creates a
	// missing container.
	CreateContainer bool
}

// NewTarget builds the clients for c, with the SDK's retry policy. Errors
// of Upload to the target carry none of c's secrets (Secrets).
func NewTarget(c ClientConfig) (Target, error) {
	t, err := newTarget(c)
	t.secrets = Secrets(c)
	return t, Redact(err, t.secrets)
}

func newTarget(c ClientConfig) (Target, error) {
	if c.Container == "" || c.BlobName == "" {
		return Target{}, errors.New("storage: container and blob name are required")
	}
	co := azcore.ClientOptions{Retry: c.Retry, Transport: c.Transport, PerRetryPolicies: c.PerRetryPolicies,
		InsecureAllowCredentialWithHTTP: c.AllowCredentialOnHTTP}
	bo := &azpageblob.ClientOptions{ClientOptions: co}
	ko := &container.ClientOptions{ClientOptions: co}
	var t Target
	var err error
	var cc *container.Client
	switch {
	case c.ConnectionString != "":
		t.Blob, err = azpageblob.NewClientFromConnectionString(c.ConnectionString, c.Container, c.BlobName, bo)
		if err == nil {
			cc, err = container.NewClientFromConnectionString(c.ConnectionString, c.Container, ko)
		}
		if err != nil {
			// The SDK's message may quote the string; never print it.
			return Target{}, errors.New("storage: the connection string cannot be parsed (want AccountName=...;AccountKey=... or BlobEndpoint=...;SharedAccessSignature=...)")
		}
	case c.Endpoint == "":
		return Target{}, errors.New("storage: no blob endpoint (storage account) given")
	case c.SAS != "":
		sas := strings.TrimPrefix(c.SAS, "?")
		base := strings.TrimSuffix(c.Endpoint, "/") + "/" + url.PathEscape(c.Container)
		if t.Blob, err = azpageblob.NewClientWithNoCredential(base+"/"+escapeBlob(c.BlobName)+"?"+sas, bo); err == nil {
			cc, err = container.NewClientWithNoCredential(base+"?"+sas, ko)
		}
		if err != nil {
			return Target{}, fmt.Errorf("storage: endpoint %s with a SAS: %w", c.Endpoint, err)
		}
	case c.Credential != nil:
		base := strings.TrimSuffix(c.Endpoint, "/") + "/" + url.PathEscape(c.Container)
		if t.Blob, err = azpageblob.NewClient(base+"/"+escapeBlob(c.BlobName), c.Credential, bo); err == nil {
			cc, err = container.NewClient(base, c.Credential, ko)
		}
		if err != nil {
			return Target{}, fmt.Errorf("storage: endpoint %s: %w", c.Endpoint, err)
		}
	default:
		return Target{}, errors.New("storage: no credential: give a connection string, a SAS or an Azure AD credential")
	}
	if c.CreateContainer {
		t.Container = cc
	}
	t.container = cc
	return t, nil
}

// escapeBlob escapes a blob name for a URL, keeping its slashes.
func escapeBlob(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// URLWithoutQuery strips a SAS from a blob URL for display.
func URLWithoutQuery(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}
