package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func init() {
	register(suite{name: "release", title: "A release after the disks exist (convert, upload, publish, push) through packer build, against the seeds' script; the no-op re-run of a 10-variant release", run: benchRelease})
}

// releaseRig is what the release suite's packer builds run against: the
// plugin installed into its own plugin directory, Azurite (in memory), the
// distribution registry and the Resource Manager stand-in of `make demo`
// (scripts/armstandin), each restarted empty by reset.
type releaseRig struct {
	root, dir, packer string
	az                *azurite
	reg               *registry
	arm               *exec.Cmd
	armURL            string
	sub, rg           string
}

const releaseSub, releaseRG = "00000000-0000-0000-0000-000000000001", "bench-images"

func newReleaseRig(cfg config) (*releaseRig, error) {
	root, _ := filepath.Abs(".")
	dir, _ := filepath.Abs(filepath.Join(cfg.work, "release"))
	bin := filepath.Join(root, ".tools", "bin")
	rig := &releaseRig{root: root, dir: dir, packer: filepath.Join(bin, "packer"), sub: releaseSub, rg: releaseRG}
	for _, p := range []string{rig.packer, filepath.Join(bin, "registry"), filepath.Join(bin, "oras"), filepath.Join(root, ".tools/azurite/node_modules/.bin/azurite-blob")} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s: %w (run make tools)", p, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return nil, err
	}
	// The plugin as `make demo` installs it, and the stand-in.
	for _, c := range [][]string{
		{"go", "build", "-o", filepath.Join(dir, "packer-plugin-osimage"), "."},
		{rig.packer, "plugins", "install", "--path", filepath.Join(dir, "packer-plugin-osimage"), "github.com/osimage/osimage"},
		{"go", "build", "-o", filepath.Join(dir, "armstandin"), "./scripts/armstandin"},
	} {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Env = rig.env()
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	// The stand-in's token comes from an `az` that hands one out, as the
	// Azure CLI does (only on the packer builds' PATH: the script runs
	// the real az).
	fakeAz := "#!/bin/sh\necho '{\"accessToken\":\"bench-token\",\"expiresOn\":\"2099-12-31 00:00:00.000000\",\"expires_on\":4102358400,\"subscription\":\"" + releaseSub + "\",\"tenant\":\"bench\",\"tokenType\":\"Bearer\"}'\n"
	if err := os.WriteFile(filepath.Join(dir, "bin", "az"), []byte(fakeAz), 0o755); err != nil {
		return nil, err
	}
	azAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	rig.az = &azurite{root: root, addr: azAddr}
	regAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	rig.reg = &registry{bin: filepath.Join(bin, "registry"), dir: dir, addr: regAddr, cfg: filepath.Join(dir, "registry.yml")}
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), regAddr)
	if err := os.WriteFile(rig.reg.cfg, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return rig, nil
}

func (r *releaseRig) env() []string {
	return append(os.Environ(), "PACKER_PLUGIN_PATH="+filepath.Join(r.dir, "plugins"), "CHECKPOINT_DISABLE=1",
		"GOFLAGS=-buildvcs=false", "PACKER_NO_COLOR=1")
}

// reset gives every service an empty start.
func (r *releaseRig) reset() error {
	if err := r.az.reset(); err != nil {
		return err
	}
	if err := r.reg.reset(); err != nil {
		return err
	}
	return r.startARM()
}

func (r *releaseRig) startARM() error {
	r.stopARM()
	state, urlFile := filepath.Join(r.dir, "arm.json"), filepath.Join(r.dir, "arm.url")
	os.Remove(state)
	os.Remove(urlFile)
	account := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/storageAccounts/devstoreaccount1", r.sub, r.rg)
	cmd := exec.Command(filepath.Join(r.dir, "armstandin"), "-state", state, "-url-file", urlFile, "-cert", filepath.Join(r.dir, "arm.pem"),
		"-storage-account", account, "-location", "westeurope", "-azurite", connectionString(r.az.addr))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	r.arm = cmd
	for i := 0; i < 300; i++ {
		if b, err := os.ReadFile(urlFile); err == nil && len(b) > 0 {
			r.armURL = strings.TrimSpace(string(b))
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the Resource Manager stand-in did not start")
}

func (r *releaseRig) stopARM() {
	if r.arm != nil {
		r.arm.Process.Signal(syscall.SIGTERM)
		r.arm.Wait()
		r.arm = nil
	}
}

func (r *releaseRig) stop() {
	r.stopARM()
	r.az.stop()
	r.reg.stop()
}

// build is the argv of a packer build of template with the services'
// variables, as `make demo` runs it.
func (r *releaseRig) build(template, state, out, disks, stage string, extra ...string) []string {
	argv := []string{"env"}
	argv = append(argv, r.env()...)
	argv = append(argv, "PATH="+filepath.Join(r.dir, "bin")+":"+os.Getenv("PATH"), "SSL_CERT_FILE="+filepath.Join(r.dir, "arm.pem"),
		r.packer, "build", "-only=osimage-*", "-var", "stage="+stage, "-var", "state="+state, "-var", "output_dir="+out, "-var", "disks="+disks,
		"-var", "registry="+r.reg.addr, "-var", "storage_connection_string="+connectionString(r.az.addr), "-var", "storage_account=devstoreaccount1",
		"-var", fmt.Sprintf(`gallery={subscription=%q, resource_group=%q, name="bench", location="westeurope"}`, r.sub, r.rg),
		"-var", "resource_manager_endpoint="+r.armURL, "-var", "use_azure_cli_auth=true")
	argv = append(argv, extra...)
	return append(argv, template)
}

// run runs argv untimed (the suite's set-up), failing with its output.
func run(argv []string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v\n%s", strings.Join(argv[len(argv)-3:], " "), err, tail(string(out), 40))
	}
	return string(out), nil
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// copyTree copies a directory (the release state) with cp, keeping holes.
func copyTree(from, to string) error {
	if err := os.RemoveAll(to); err != nil {
		return err
	}
	out, err := exec.Command("cp", "-a", "--sparse=always", from, to).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp %s %s: %v %s", from, to, err, out)
	}
	return nil
}

func benchRelease(cfg config) (string, error) {
	az, err := exec.LookPath("az")
	if err != nil {
		return "", fmt.Errorf("az not found: the release benchmark compares with Debian's azure-cli (apt-get install azure-cli; scripts/bench.sh installs it)")
	}
	rig, err := newReleaseRig(cfg)
	if err != nil {
		return "", err
	}
	defer rig.stop()
	var b strings.Builder
	pipe, err := benchPipeline(cfg, rig, az)
	if err != nil {
		return "", err
	}
	b.WriteString(pipe)
	noop, err := benchNoop(cfg, rig)
	if err != nil {
		return "", err
	}
	b.WriteString(noop)
	return b.String(), nil
}

// The disks: 2 GiB with 700 MiB of incompressible data in the root
// filesystem, about what Debian's own 2 GiB cloud image holds.
const pipeDiskMiB, pipeFillMiB = 2048, 700

func benchPipeline(cfg config, rig *releaseRig, az string) (string, error) {
	dir := filepath.Join(rig.dir, "pipeline")
	disks := filepath.Join(dir, "disks")
	if _, err := os.Stat(filepath.Join(disks, "disk-x86_64.raw")); err != nil {
		cmd := exec.Command(filepath.Join(rig.root, "example/quickstart/make-disks.sh"), disks)
		cmd.Env = append(os.Environ(), fmt.Sprintf("DISK_MIB=%d", pipeDiskMiB), fmt.Sprintf("FILL_MIB=%d", pipeFillMiB))
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("make-disks.sh: %v\n%s", err, out)
		}
	}
	template := filepath.Join(rig.root, "example", "debian")
	out, state, built := filepath.Join(dir, "out"), filepath.Join(dir, "state"), filepath.Join(dir, "state.built")
	// Set-up, untimed: stage build (the disks copied in and their kernel,
	// initramfs and rootfs split out; nothing published), and the state
	// as it then is, restored before every timed publish.
	os.RemoveAll(out)
	os.RemoveAll(state)
	if err := rig.reset(); err != nil {
		return "", err
	}
	if _, err := run(rig.build(template, state, out, disks, "build")); err != nil {
		return "", fmt.Errorf("stage build: %w", err)
	}
	if err := copyTree(state, built); err != nil {
		return "", err
	}
	vm, metal := "debian-vm-x86_64-virtualization-gen1", "debian-vm-x86_64-baremetal-gen1"
	raw := filepath.Join(out, vm, vm+".raw")
	mfile := func(kind string) string { return filepath.Join(out, metal, metal+"."+kind) }
	for _, p := range []string{raw, mfile("kernel"), mfile("initrd"), mfile("rootfs"), filepath.Join(out, vm, vm+".rootfs")} {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("stage build left no %s: %w", p, err)
		}
	}
	cfgFile := filepath.Join(dir, "config.json")
	os.WriteFile(cfgFile, []byte(`{"commandLine":"console=ttyS0"}`), 0o644)
	scriptVHD := filepath.Join(dir, "script.vhd")
	repo := rig.reg.addr + "/debian/12"
	oras := filepath.Join(rig.root, ".tools", "bin", "oras")
	// The seeds' way on the same files: AlmaLinux's azure_uploader.sh
	// (qemu-img convert to a fixed VHD, md5sum, az storage blob upload
	// --type page) and an oras push per manifest of the same layers, each
	// step timed by the script itself.
	script := fmt.Sprintf(`set -e
t() { echo "$1-ns: $(( $(date +%%s%%N) - $2 ))"; }
s=$(date +%%s%%N)
qemu-img convert -f raw -O vpc -o subformat=fixed,force_size %[1]q %[2]q
t convert $s; s=$(date +%%s%%N)
sum=$(md5sum %[2]q | cut -d' ' -f1)
b64=$(printf %%s "$sum" | xxd -r -p | base64)
t md5 $s; s=$(date +%%s%%N)
%[3]q storage blob upload --type page --content-md5 "$b64" -f %[2]q -c bench -n script.vhd --connection-string %[4]q --only-show-errors >/dev/null
t upload $s; s=$(date +%%s%%N)
%[5]q push --plain-http --disable-path-validation %[6]q:12-kvm-amd64 --config %[7]q:application/vnd.ironcore.image.config.v1+json %[8]q:application/vnd.ironcore.image.rootfs >/dev/null
%[5]q push --plain-http --disable-path-validation %[6]q:12-metal-amd64 --config %[7]q:application/vnd.ironcore.image.config.v1+json %[9]q:application/vnd.ironcore.image.kernel %[10]q:application/vnd.ironcore.image.initramfs %[11]q:application/vnd.ironcore.image.rootfs >/dev/null
t push $s
`, raw, scriptVHD, az, connectionString(rig.az.addr), oras, repo, cfgFile, filepath.Join(out, vm, vm+".rootfs"), mfile("kernel"), mfile("initrd"), mfile("rootfs"))
	const (
		nScript  = "the seeds' way: qemu-img convert (fixed VHD) + md5sum + az storage blob upload --type page + 2 oras pushes"
		nPublish = "osimage: packer build, stage publish (osimage-vhd, osimage-gallery: upload + gen1 and gen2 versions, osimage-oci: 2 indexes)"
		nRelease = "osimage: packer build, stage release (promotion: versions into latest, moving tags)"
	)
	cs := []contender{
		{name: nScript, argv: []string{"bash", "-c", script}, prepare: func() error {
			os.Remove(scriptVHD)
			return rig.reset()
		}, cleanup: func() error { return os.Remove(scriptVHD) }},
		{name: nPublish, argv: rig.build(template, state, out, disks, "publish"), prepare: func() error {
			// The state as stage build left it, no VHD, empty services.
			if err := copyTree(built, state); err != nil {
				return err
			}
			os.Remove(filepath.Join(out, vm, vm+".vhd"))
			return rig.reset()
		}, cleanup: func() error {
			b, err := os.ReadFile(filepath.Join(state, "12", vm, "r0.json"))
			if err != nil {
				return fmt.Errorf("the publish run recorded nothing: %w", err)
			}
			if strings.Count(string(b), `"published"`) < 2 {
				return fmt.Errorf("the publish run did not record both publications (gallery, registry): %s", b)
			}
			return nil
		}},
		{name: nRelease, argv: rig.build(template, state, out, disks, "release")},
	}
	res, err := compareReleaseRuns(cfg.n, rig, cs)
	if err != nil {
		return "", err
	}
	scr, pub, rel := res[0], res[1], res[2]
	var b strings.Builder
	fmt.Fprintf(&b, "Command: `make bench` (suite `release`: `scripts/bench.sh release`, %d runs each, interleaved; before every run Azurite (in memory), the distribution registry and the Resource Manager stand-in of `make demo` start empty, untimed). Machine: %s.\n\n", cfg.n, machine())
	fmt.Fprintf(&b, "### The pipeline after the disks exist\n\nInput: example/debian's two x86_64 variants (VM and bare metal) from `example/quickstart/make-disks.sh` disks of %d MiB with %d MiB of incompressible data in the root filesystem, taken through stage `build` once, untimed (disks copied in, kernel, initramfs and rootfs split out, the release state written). Every publish run starts from that state and no VHD. Ours is the whole `packer build` (packer, the plugin's processes, the matrix, the release state) and does more than the script: it also creates the gen1 and gen2 gallery versions (the stand-in checks the blob), hashes what it uploads and pushes, writes the SBOM referrers and records the state. The script is AlmaLinux's `azure_uploader.sh` steps and an oras push per manifest of the same files; it creates no gallery version (`az sig image-version create` cannot reach the stand-in).\n\n", pipeDiskMiB, pipeFillMiB)
	b.WriteString("| contender | median wall | vs the seeds' way | peak memory | CPU time |\n|---|---:|---:|---:|---:|\n")
	for _, r := range []result{scr, pub, rel} {
		fmt.Fprintf(&b, "| %s | %s | %.2fx | %s | %s |\n", r.name, fmtDur(r.median()), float64(scr.median())/float64(r.median()), fmtMiB(r.peakRSS()), fmtDur(r.medianCPU()))
	}
	fmt.Fprintf(&b, "\nThe seeds' way, step by step (median): qemu-img convert %s, md5sum %s, az upload %s, oras pushes %s.\n",
		fmtDur(medianField(scr, "convert-ns")), fmtDur(medianField(scr, "md5-ns")), fmtDur(medianField(scr, "upload-ns")), fmtDur(medianField(scr, "push-ns")))
	speed := float64(scr.median()) / float64(pub.median())
	both := float64(scr.median()) / float64(pub.median()+rel.median())
	fmt.Fprintf(&b, "\nTarget: at least 3x faster end to end than the seeds' way: stage publish %.2fx, %s; publish and promotion together %.2fx. Peak memory is the largest resident size among the run's processes polled every 2 ms (packer's own for ours; bash's for the script, whose az and oras run as children and are not polled).\n",
		speed, verdict(speed >= 3), both)
	fmt.Fprintf(&b, "\nLoad average when the runs ended: %s.\n\n", loadAvg())
	return b.String(), nil
}

// compareReleaseRuns is compare for contenders whose argv names the
// stand-in's URL, which changes with every restart: the argv is re-made
// after prepare.
func compareReleaseRuns(n int, rig *releaseRig, cs []contender) ([]result, error) {
	res := make([]result, len(cs))
	for i, c := range cs {
		res[i] = result{name: c.name, argv: c.argv}
	}
	for round := 0; round < n; round++ {
		for i, c := range cs {
			if c.prepare != nil {
				if err := c.prepare(); err != nil {
					return nil, err
				}
			}
			argv := withARM(c.argv, rig.armURL)
			dropCaches()
			s, err := runOnce(argv, true)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			res[i].samples = append(res[i].samples, s)
			if c.cleanup != nil {
				if err := c.cleanup(); err != nil {
					return nil, err
				}
			}
		}
	}
	return res, nil
}

// withARM replaces the resource_manager_endpoint variable's value.
func withARM(argv []string, url string) []string {
	out := append([]string(nil), argv...)
	for i, a := range out {
		if strings.HasPrefix(a, "resource_manager_endpoint=") {
			out[i] = "resource_manager_endpoint=" + url
		}
	}
	return out
}

// benchNoop times the second run of a released 10-variant release, and the
// matrix alone (packer build of example/matrix-json over the same tree).
func benchNoop(cfg config, rig *releaseRig) (string, error) {
	dir := filepath.Join(rig.dir, "noop")
	os.RemoveAll(dir)
	tree := filepath.Join(dir, "template")
	if err := copyTree(filepath.Join(rig.root, "example", "debian"), tree); err != nil {
		return "", err
	}
	if err := writeTenVariants(tree, rig.root); err != nil {
		return "", err
	}
	disks := filepath.Join(dir, "disks")
	if out, err := exec.Command(filepath.Join(rig.root, "example/quickstart/make-disks.sh"), disks).CombinedOutput(); err != nil {
		return "", fmt.Errorf("make-disks.sh: %v\n%s", err, out)
	}
	out, state := filepath.Join(dir, "out"), filepath.Join(dir, "state")
	if err := rig.reset(); err != nil {
		return "", err
	}
	// Set-up, untimed: the whole release, published and promoted.
	for _, stage := range []string{"publish", "release"} {
		if _, err := run(rig.build(tree, state, out, disks, stage)); err != nil {
			return "", fmt.Errorf("stage %s of the 10-variant release: %w", stage, err)
		}
	}
	// The machine that re-runs it has no disks: the state must suffice.
	os.RemoveAll(disks)
	matrixOut := filepath.Join(dir, "matrix.json")
	matrixArgv := append(append([]string{"env"}, rig.env()...), rig.packer, "build", "-var", "config="+filepath.Join(tree, "images.toml"),
		"-var", "output="+matrixOut, filepath.Join(rig.root, "example", "matrix-json"))
	noopArgv := rig.build(tree, state, out, disks, "release")
	cs := []contender{
		{name: "packer build of example/matrix-json over the same tree (packer, the plugin, load + expand)", argv: matrixArgv},
		{name: "the second run of the released release: packer build, stage release", argv: noopArgv},
	}
	res, err := compareReleaseRuns(cfg.n, rig, cs)
	if err != nil {
		return "", err
	}
	// And that it did nothing: once more, untimed, its output read.
	o, err := run(withARM(noopArgv, rig.armURL))
	if err != nil {
		return "", err
	}
	if n := strings.Count(o, "nothing to do"); n < 10 || strings.Contains(o, "Uploading") || strings.Contains(o, "osimage-disk.") {
		return "", fmt.Errorf("the no-op run did work (%d \"nothing to do\"):\n%s", n, o)
	}
	m, noop := res[0], res[1]
	after := noop.median() - m.median()
	var b strings.Builder
	fmt.Fprintf(&b, "### The no-op re-run of a 10-variant release\n\nexample/debian with 5 images (10 variants: VM and bare metal for x86_64, each image with its own gallery definitions and repository) on 64 MiB disks, published and promoted untimed; then the disks are deleted (the re-running machine has none) and stage release runs again: every variant from the release state (`osimage-state`), every post-processor finding its work recorded. %d runs each, interleaved.\n\n", cfg.n)
	b.WriteString("| run | median wall | peak memory | CPU time |\n|---|---:|---:|---:|\n")
	for _, r := range res {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.name, fmtDur(r.median()), fmtMiB(r.peakRSS()), fmtDur(r.medianCPU()))
	}
	fmt.Fprintf(&b, "\nTarget: under 5 s after the matrix: %s (the no-op run's median less the matrix run's), %s.\n\n", fmtDur(after), verdict(after < 5*time.Second))
	return b.String(), nil
}

// writeTenVariants turns a copy of example/debian into a release of 5
// images (10 variants on x86_64: VM and bare metal), each published to its
// own gallery definitions and repository, as distinct images are.
func writeTenVariants(tree, root string) error {
	if err := os.RemoveAll(filepath.Join(tree, "debian-vm")); err != nil {
		return err
	}
	var d strings.Builder
	d.WriteString("[distros.debian]\ndescription = \"Debian\"\ndefault-version = \"12\"\n\n[distros.debian.versions.'12']\ndescription = \"Debian 12\"\nrelease-ver = \"12\"\n")
	var stores []string
	for i := 1; i <= 5; i++ {
		stores = append(stores, fmt.Sprintf("%q, %q", fmt.Sprintf("g%d", i), fmt.Sprintf("r%d", i)))
	}
	fmt.Fprintf(&d, "outputs = { image-stores = [%s] }\n", strings.Join(stores, ", "))
	def := filepath.Join(root, "internal/kiwi/testdata/bookworm/config.xml")
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(&d, `
[[resources.g%[1]d]]
publish-labels = ["vm%[1]d"]
interface-type = "azure-compute-gallery"
backend = "azure-compute-gallery"
resource-urn = "*"
images = [{ name = "debian-12-vm%[1]d-x64", arch = "x86_64" }]

[[resources.r%[1]d]]
publish-labels = ["vm%[1]d", "metal%[1]d"]
interface-type = "oci-registry"
backend = "oci-distribution"
resource-urn = "*"
images = [{ name = "debian/vm%[1]d" }]
`, i)
		img := fmt.Sprintf(`[images.vm%[1]d]
description = "Debian 12 image %[1]d"
distro = "debian"
definition = { type = "kiwi", path = %[2]q }
publish = { labels = ["vm%[1]d"] }

[images.vm%[1]d.delivery.shared_gallery]
image_version = "*"

[images.vm%[1]d.variants]
architectures = ["x86_64"]
platforms = ["virtualization", "baremetal"]
hyperv_generations = ["gen1"]

[[images.vm%[1]d.variants.when]]
match = { platform = "baremetal" }
unset = ["publish"]
set.publish.labels = ["metal%[1]d"]
`, i, def)
		p := filepath.Join(tree, fmt.Sprintf("vm%d", i), fmt.Sprintf("vm%d.image.toml", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(img), 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(tree, "debian.distro.toml"), []byte(d.String()), 0o644); err != nil {
		return err
	}
	// Each image's gen1 versions into a definition of its own.
	hcl := filepath.Join(tree, "build.pkr.hcl")
	b, err := os.ReadFile(hcl)
	if err != nil {
		return err
	}
	s := strings.Replace(string(b), `gen1_image_name = "debian-12-x64-gen1"`, `gen1_image_name = "${source.name}-g1"`, 1)
	if s == string(b) {
		return fmt.Errorf("%s: no gen1_image_name to make per image", hcl)
	}
	return os.WriteFile(hcl, []byte(s), 0o644)
}
