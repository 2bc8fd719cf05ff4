package armfake

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// Server puts the store behind a loopback TLS server, so a process of its
// own (the plugin under the real packer binary) reaches it over the wire:
// set its Resource Manager endpoint to URL and trust CertPEM.
type Server struct {
	*httptest.Server
	store *Store
	mu    sync.Mutex
	lro   map[string]string // path -> API of the long-running operation on it
}

// NewServer starts the TLS server; Close stops it.
func NewServer(s *Store) *Server {
	srv := &Server{store: s, lro: map[string]string{}}
	srv.Server = httptest.NewTLSServer(http.HandlerFunc(srv.serve))
	return srv
}

// apiName maps a request to the SDK method the fake servers dispatch on.
func (s *Server) apiName(r *http.Request) string {
	const poll = "/get/fake/status"
	p := strings.TrimSuffix(r.URL.Path, "/")
	if strings.HasSuffix(p, poll) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.lro[strings.TrimSuffix(p, poll)]
	}
	seg := strings.Split(strings.Trim(p, "/"), "/")
	n := len(seg)
	var name string
	switch {
	case n >= 2 && strings.EqualFold(seg[n-2], "storageAccounts"):
		return "StorageAccounts.Get" // answered by the store's observer
	case n >= 2 && seg[n-2] == "versions":
		name = map[string]string{"GET": "GalleryImageVersionsClient.Get", "PUT": "GalleryImageVersionsClient.BeginCreateOrUpdate", "DELETE": "GalleryImageVersionsClient.BeginDelete",
			"PATCH": "GalleryImageVersionsClient.BeginUpdate"}[r.Method]
	case n >= 1 && seg[n-1] == "versions":
		name = "GalleryImageVersionsClient.NewListByGalleryImagePager"
	case n >= 2 && seg[n-2] == "images":
		name = map[string]string{"GET": "GalleryImagesClient.Get", "PUT": "GalleryImagesClient.BeginCreateOrUpdate"}[r.Method]
	case n >= 2 && seg[n-2] == "galleries":
		name = "GalleriesClient.Get"
	}
	if r.Method != http.MethodGet && name != "" {
		s.mu.Lock()
		s.lro[p] = name
		s.mu.Unlock()
	}
	return name
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		http.Error(w, `{"error":{"code":"AuthenticationFailed","message":"no bearer token"}}`, http.StatusUnauthorized)
		return
	}
	name := s.apiName(r)
	if name == "" {
		http.Error(w, `{"error":{"code":"NotFound","message":"unknown API"}}`, http.StatusNotFound)
		return
	}
	req := r.Clone(context.WithValue(r.Context(), runtime.CtxAPINameKey{}, name))
	req.RequestURI = ""
	resp, err := s.store.Transport().Do(req)
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.RawResponse != nil {
		resp, err = re.RawResponse, nil // a fake error answer: send it as it is
	}
	if err != nil {
		http.Error(w, `{"error":{"code":"FakeError","message":"`+strings.ReplaceAll(err.Error(), `"`, `'`)+`"}}`, http.StatusInternalServerError)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// CertPEM returns the server's certificate, to trust it (SSL_CERT_FILE).
func (s *Server) CertPEM() []byte {
	return pemCert(s.Certificate().Raw)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
