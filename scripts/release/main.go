// Command release builds the release archives `packer init` downloads from a
// GitHub release, without goreleaser (which .goreleaser.yml configures for
// tagged releases; both produce the same names):
//
//	dist/packer-plugin-osimage_v<version>_x5.0_<os>_<arch>.zip
//	    containing packer-plugin-osimage_v<version>_x5.0_<os>_<arch>[.exe]
//	dist/packer-plugin-osimage_v<version>_SHA256SUMS
//
// Usage: go run ./scripts/release [-version 0.1.0] [-out dist] [-targets linux/amd64,...]
package main

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

const (
	name   = "packer-plugin-osimage"
	module = "github.com/osimage/packer-plugin-osimage"
)

var defaultTargets = "linux/amd64,linux/arm64,darwin/amd64,darwin/arm64,windows/amd64,windows/arm64"

func main() {
	version := flag.String("version", "", "release version without v (default: version/version.go)")
	out := flag.String("out", "dist", "output directory (emptied first)")
	targets := flag.String("targets", defaultTargets, "comma-separated GOOS/GOARCH list")
	flag.Parse()
	if err := run(*version, *out, strings.Split(*targets, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(version, out string, targets []string) error {
	if version == "" {
		b, err := os.ReadFile("version/version.go")
		if err != nil {
			return fmt.Errorf("run from the repository root: %w", err)
		}
		m := regexp.MustCompile(`\bVersion = "([^"]+)"`).FindSubmatch(b)
		if m == nil {
			return fmt.Errorf("no Version in version/version.go")
		}
		version = string(m[1])
	}
	version = strings.TrimPrefix(version, "v")
	if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(version) {
		return fmt.Errorf("version %q: want MAJOR.MINOR.PATCH (packer init accepts no pre-release here)", version)
	}
	api, err := apiVersion()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	sums := map[string]string{}
	for _, t := range targets {
		goos, goarch, ok := strings.Cut(strings.TrimSpace(t), "/")
		if !ok {
			return fmt.Errorf("target %q: want GOOS/GOARCH", t)
		}
		base := fmt.Sprintf("%s_v%s_%s_%s_%s", name, version, api, goos, goarch)
		bin := base
		if goos == "windows" {
			bin += ".exe"
		}
		binPath := filepath.Join(out, bin)
		start := time.Now()
		cmd := exec.Command("go", "build", "-trimpath",
			"-ldflags", fmt.Sprintf("-s -w -X %s/version.Version=%s -X %s/version.VersionPrerelease=", module, version, module),
			"-o", binPath, ".")
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s/%s: %v\n%s", goos, goarch, err, b)
		}
		zipName := base + ".zip"
		if err := zipOne(filepath.Join(out, zipName), binPath, bin); err != nil {
			return err
		}
		os.Remove(binPath)
		sum, err := fileSHA256(filepath.Join(out, zipName))
		if err != nil {
			return err
		}
		sums[zipName] = sum
		fmt.Printf("%s (%.0fs)\n", filepath.Join(out, zipName), time.Since(start).Seconds())
	}
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[n], n)
	}
	sumsPath := filepath.Join(out, fmt.Sprintf("%s_v%s_SHA256SUMS", name, version))
	fmt.Println(sumsPath)
	return os.WriteFile(sumsPath, []byte(b.String()), 0o644)
}

// apiVersion asks a host build of the plugin for its plugin API version.
func apiVersion() (string, error) {
	tmp, err := os.MkdirTemp("", "release-describe-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, name)
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("build for describe: %v\n%s", err, b)
	}
	b, err := exec.Command(bin, "describe").Output()
	if err != nil {
		return "", fmt.Errorf("describe: %w", err)
	}
	var d struct {
		APIVersion string `json:"api_version"`
	}
	if err := json.Unmarshal(b, &d); err != nil || d.APIVersion == "" {
		return "", fmt.Errorf("describe printed no api_version: %s", b)
	}
	return d.APIVersion, nil
}

func zipOne(zipPath, file, nameInZip string) error {
	zf, err := os.Create(zipPath)
	if err != nil {
		return err
	}
	defer zf.Close()
	zw := zip.NewWriter(zf)
	st, err := os.Stat(file)
	if err != nil {
		return err
	}
	hdr, err := zip.FileInfoHeader(st)
	if err != nil {
		return err
	}
	hdr.Name, hdr.Method = nameInZip, zip.Deflate
	hdr.Modified = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // reproducible archives
	hdr.SetMode(0o755)
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return zf.Close()
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
