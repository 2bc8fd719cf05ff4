// Command armstandin serves the Azure Resource Manager stand-in of the
// tests (internal/azure/gallery/armfake: Compute Gallery definitions and
// versions, storage accounts) on a loopback TLS port, for `make demo`.
// Azure has no local emulator for Resource Manager; this one refuses what
// Azure refuses where the tests taught it to, and nothing more.
//
//	armstandin -state .demo/arm.json -url-file .demo/arm.url -cert .demo/arm.pem \
//	  -storage-account /subscriptions/S/resourceGroups/R/providers/Microsoft.Storage/storageAccounts/A \
//	  -azurite "DefaultEndpointsProtocol=http;..."
//
// It writes its URL and certificate, serves until SIGINT or SIGTERM, and
// keeps its definitions and versions in -state across runs.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery/armfake"
)

// saved is what -state holds.
type saved struct {
	Location    string                                    `json:"location"`
	Definitions map[string]armcompute.GalleryImage        `json:"definitions"`
	Versions    map[string]armcompute.GalleryImageVersion `json:"versions"`
}

func main() {
	state := flag.String("state", "", "JSON file keeping the gallery across runs")
	urlFile := flag.String("url-file", "", "file to write the server's URL to")
	cert := flag.String("cert", "", "file to write the server's certificate (PEM) to")
	account := flag.String("storage-account", "", "resource id of the storage account the blobs are in")
	location := flag.String("location", "westeurope", "the gallery's region")
	azurite := flag.String("azurite", "", "connection string of the Azurite holding the blobs (for the page-blob check)")
	flag.Parse()
	if *urlFile == "" || *cert == "" {
		log.Fatal("armstandin: -url-file and -cert are required")
	}
	s := armfake.New()
	s.Location = *location
	if *account != "" {
		s.PutStorageAccount(*account, *location)
	}
	if *azurite != "" {
		s.SourceBlobType = armfake.AzuriteBlobType(*azurite)
	}
	if *state != "" {
		if err := load(s, *state); err != nil {
			log.Fatalf("armstandin: %s: %v", *state, err)
		}
	}
	srv := armfake.NewServer(s)
	defer srv.Close()
	if err := os.WriteFile(*cert, srv.CertPEM(), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*urlFile, []byte(srv.URL+"/\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "armstandin: Azure Resource Manager stand-in on %s\n", srv.URL)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	if *state != "" {
		if err := save(s, *state); err != nil {
			log.Fatalf("armstandin: %s: %v", *state, err)
		}
	}
}

func load(s *armfake.Store, path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var v saved
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	for name, d := range v.Definitions {
		s.PutDefinition(name, d)
	}
	for key, ver := range v.Versions {
		def, version, ok := cut(key)
		if !ok {
			return fmt.Errorf("version key %q: want definition/version", key)
		}
		s.PutVersion(def, version, ver)
	}
	return nil
}

func save(s *armfake.Store, path string) error {
	defs, vers := s.Snapshot()
	v := saved{Location: s.Location, Definitions: defs, Versions: vers}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func cut(key string) (string, string, bool) {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return "", "", false
}
