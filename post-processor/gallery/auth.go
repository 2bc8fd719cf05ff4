package gallery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"

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
// description of the sources it tries, for errors. transport, when set,
// carries its token requests (tests); announce is told once which source
// authenticated.
func (c *Config) credential(transport policy.Transporter, announce func(string)) (azcore.TokenCredential, string, error) {
	cc, err := cloudConfig(c.CloudEnvironmentName, c.ResourceManagerEndpoint, c.ActiveDirectoryAuthorityHost)
	if err != nil {
		return nil, "", err
	}
	opts := azcore.ClientOptions{Cloud: cc, Transport: transport}
	// A custom authority (sovereign, Azure Stack, a local test endpoint)
	// is not in Microsoft's instance metadata.
	noDiscovery := c.ActiveDirectoryAuthorityHost != ""
	oidcURL, oidcToken := c.oidc()
	one := func(name string, cred azcore.TokenCredential, err error) (azcore.TokenCredential, string, error) {
		if err != nil {
			return nil, name, err
		}
		return &namedChain{links: []namedCred{{name, cred}}, announce: announce}, name, nil
	}
	switch {
	case c.ClientSecret != "":
		cred, err := azidentity.NewClientSecretCredential(c.TenantID, c.ClientID, c.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: noDiscovery})
		return one("client secret (client_id, client_secret, tenant_id)", cred, err)
	case c.ClientJWT != "":
		jwt := c.ClientJWT
		cred, err := azidentity.NewClientAssertionCredential(c.TenantID, c.ClientID, func(context.Context) (string, error) { return jwt, nil },
			&azidentity.ClientAssertionCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: noDiscovery})
		return one("client assertion (client_id, client_jwt, tenant_id)", cred, err)
	case c.ClientID != "" && oidcURL != "" && oidcToken != "":
		// Every token request fetches a fresh ID token: GitHub's lives 5
		// minutes, a build much longer (packer-plugin-azure does the same).
		idp := &oidcSource{url: oidcURL, token: oidcToken, client: &http.Client{Transport: http.DefaultTransport}}
		cred, err := azidentity.NewClientAssertionCredential(c.TenantID, c.ClientID, idp.assertion,
			&azidentity.ClientAssertionCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: noDiscovery})
		return one("OIDC federation (client_id, tenant_id, an ID token from oidc_request_url)", cred, err)
	case c.UseAzureCLIAuth:
		cred, err := azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: c.TenantID})
		return one("Azure CLI (use_azure_cli_auth)", cred, err)
	case c.ClientID != "":
		// client_id alone: the identities azidentity has a use for it in.
		var links []namedCred
		var tried []string
		if f := os.Getenv("AZURE_FEDERATED_TOKEN_FILE"); f != "" {
			cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{ClientOptions: opts,
				ClientID: c.ClientID, TenantID: c.TenantID, TokenFilePath: f, DisableInstanceDiscovery: noDiscovery})
			if err != nil {
				return nil, "workload identity", err
			}
			links = append(links, namedCred{"workload identity (client_id, AZURE_FEDERATED_TOKEN_FILE)", cred})
			tried = append(tried, "workload identity (AZURE_FEDERATED_TOKEN_FILE)")
		}
		cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts, ID: azidentity.ClientID(c.ClientID)})
		if err != nil {
			return nil, "managed identity", err
		}
		links = append(links, namedCred{"user-assigned managed identity (client_id)", cred})
		tried = append(tried, "a user-assigned managed identity with this client_id")
		desc := fmt.Sprintf("client_id %s without client_secret, client_jwt or OIDC (oidc_request_url and oidc_request_token, or ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN inside GitHub Actions with id-token: write): %s", c.ClientID, strings.Join(tried, ", then "))
		return &namedChain{links: links, announce: announce}, desc, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: opts, TenantID: c.TenantID,
		DisableInstanceDiscovery: noDiscovery})
	return one("environment (AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET or certificate), workload identity (AZURE_FEDERATED_TOKEN_FILE), managed identity, Azure CLI, Azure Developer CLI, Azure PowerShell", cred, err)
}

// oidc returns the ID token request URL and token: the options, else
// GitHub Actions' variables (set in a job with id-token: write).
func (c *Config) oidc() (string, string) {
	return cmp.Or(c.OIDCRequestURL, os.Getenv("ACTIONS_ID_TOKEN_REQUEST_URL")), cmp.Or(c.OIDCRequestToken, os.Getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN"))
}

// oidcAudience is the audience of an ID token exchanged with Microsoft
// Entra ID (its federated identity credentials expect it).
const oidcAudience = "api://AzureADTokenExchange"

// oidcSource fetches an ID token from a GitHub Actions-style token
// service: GET <url>&audience=..., Authorization: bearer <token>, answer
// {"value": "<jwt>"}.
type oidcSource struct {
	url, token string
	client     *http.Client
}

func (o *oidcSource) assertion(ctx context.Context) (string, error) {
	u, err := url.Parse(o.url)
	if err != nil {
		return "", fmt.Errorf("oidc_request_url: %w", err)
	}
	q := u.Query()
	q.Set("audience", oidcAudience)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "bearer "+o.token)
	req.Header.Set("Accept", "application/json")
	resp, err := o.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("request an ID token from oidc_request_url: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("request an ID token from oidc_request_url %s: %s", u.Host, resp.Status)
	}
	var v struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Value == "" {
		return "", fmt.Errorf("request an ID token from oidc_request_url %s: no token in the answer", u.Host)
	}
	return v.Value, nil
}

type namedCred struct {
	name string
	cred azcore.TokenCredential
}

// namedChain tries its credentials in order, as azidentity's chain does,
// and announces the first that authenticates, once.
type namedChain struct {
	links    []namedCred
	announce func(string)
	once     sync.Once
}

func (n *namedChain) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	var errs []error
	for _, l := range n.links {
		tk, err := l.cred.GetToken(ctx, opts)
		if err == nil {
			if n.announce != nil {
				n.once.Do(func() { n.announce(l.name) })
			}
			return tk, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", l.name, err))
	}
	return azcore.AccessToken{}, errors.Join(errs...)
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
