package gallery

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// cloudConfig returns the named cloud with the endpoints overridden.
func cloudConfig(name, armEndpoint, aadHost string) (cloud.Configuration, error) {
	var c cloud.Configuration
	switch strings.ToLower(strings.ReplaceAll(name, " ", "")) {
	case "", "public", "azurepubliccloud", "azurecloud":
		c = cloud.AzurePublic
	case "usgovernment", "azureusgovernmentcloud", "azureusgovernment":
		c = cloud.AzureGovernment
	case "china", "azurechinacloud":
		c = cloud.AzureChina
	default:
		return c, fmt.Errorf("cloud_environment_name %q: want Public, USGovernment or China", name)
	}
	c.Services = map[cloud.ServiceName]cloud.ServiceConfiguration{cloud.ResourceManager: c.Services[cloud.ResourceManager]}
	if armEndpoint != "" {
		rm := c.Services[cloud.ResourceManager]
		rm.Endpoint = armEndpoint
		c.Services[cloud.ResourceManager] = rm
	}
	if aadHost != "" {
		c.ActiveDirectoryAuthorityHost = aadHost
	}
	return c, nil
}

// storageSuffix is the blob endpoint's domain of the cloud.
func storageSuffix(name string) string {
	switch strings.ToLower(strings.ReplaceAll(name, " ", "")) {
	case "usgovernment", "azureusgovernmentcloud", "azureusgovernment":
		return "core.usgovcloudapi.net"
	case "china", "azurechinacloud":
		return "core.chinacloudapi.cn"
	}
	return "core.windows.net"
}

// credential returns the Azure AD credential the config asks for and a
// description of the sources it tries, for errors.
func (c *Config) credential() (azcore.TokenCredential, string, error) {
	cc, err := cloudConfig(c.CloudEnvironmentName, c.ResourceManagerEndpoint, c.ActiveDirectoryAuthorityHost)
	if err != nil {
		return nil, "", err
	}
	opts := azcore.ClientOptions{Cloud: cc}
	switch {
	case c.ClientSecret != "":
		cred, err := azidentity.NewClientSecretCredential(c.TenantID, c.ClientID, c.ClientSecret, &azidentity.ClientSecretCredentialOptions{ClientOptions: opts})
		return cred, "client secret (client_id, client_secret, tenant_id)", err
	case c.UseAzureCLIAuth:
		cred, err := azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: c.TenantID})
		return cred, "Azure CLI (use_azure_cli_auth)", err
	}
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: opts, TenantID: c.TenantID})
	return cred, "environment (AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET or certificate), workload identity (AZURE_FEDERATED_TOKEN_FILE), managed identity, Azure CLI, Azure Developer CLI, Azure PowerShell", err
}

// tokenError is a failure to obtain a token: the credential was not
// available (nothing configured) or authentication failed.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// markedCredential makes every GetToken failure a *tokenError, whatever the
// credential. Design choice: errors are classified where the token is
// requested, because azidentity exports AuthenticationFailedError but not
// its "credential unavailable" type (its marker interface has an unexported
// method, so errors.As cannot name it outside azidentity), and a chain with
// nothing configured returns only the latter.
type markedCredential struct{ azcore.TokenCredential }

func (c markedCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tk, err := c.TokenCredential.GetToken(ctx, opts)
	if err != nil {
		return tk, &tokenError{err}
	}
	return tk, nil
}

// credentialFailure says which credential sources were tried when err is
// a failure to obtain a token, and returns other errors unchanged.
func credentialFailure(err error, tried string) error {
	if te := (*tokenError)(nil); errors.As(err, &te) {
		return fmt.Errorf("no Azure credential worked (tried %s): %w", tried, err)
	}
	return err
}
