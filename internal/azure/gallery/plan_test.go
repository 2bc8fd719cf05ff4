package gallery

import (
	"strings"
	"testing"
	"time"
)

func TestCheckVersionAcceptsOnly32BitParts(t *testing.T) {
	for v, want := range map[string]string{
		"1.0.0": "", "9.6.2025052201": "", "2147483647.0.2147483647": "",
		"9.6.2147483648": "patch part 2147483648 exceeds", "2147483648.1.1": "major part", "1.2147483648.1": "minor part",
		"9.6": "want major.minor.patch", "1.2.3.4": "want major.minor.patch", "v1.2.3": "want", "1.2.-3": "want", "": "want",
		"9.6.202505221200": "exceeds",
	} {
		err := CheckVersion(v)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckVersion(%q) = %v, want %q", v, err, want)
		}
	}
}

func TestDateVersionParsesTheHighestIndexOfTheDay(t *testing.T) {
	day := time.Date(2025, 5, 22, 10, 0, 0, 0, time.FixedZone("x", 5*3600))
	for _, c := range []struct {
		release  string
		existing []string
		want     string
	}{
		{"9.6", nil, "9.6.2025052201"},
		{"9.6", []string{"9.6.2025052201", "9.6.2025052209", "9.6.2025052105", "9.5.2025052250", "9.6.202505220"}, "9.6.2025052210"},
		{"10", []string{"10.0.2025052201"}, "10.0.2025052202"},
		{"10.1", []string{"10.0.2025052207"}, "10.1.2025052201"},
	} {
		got, err := DateVersion(c.release, day, c.existing)
		if err != nil || got != c.want {
			t.Errorf("DateVersion(%q, %v) = %q, %v; want %q", c.release, c.existing, got, err, c.want)
		}
	}
	if _, err := DateVersion("9.6", day, []string{"9.6.2025052299"}); err == nil || !strings.Contains(err.Error(), "99 versions") {
		t.Errorf("full day: %v", err)
	}
	for _, bad := range []string{"", "9.x", "a", "1.2.3", "9.-1"} {
		if _, err := DateVersion(bad, day, nil); err == nil {
			t.Errorf("release %q accepted", bad)
		}
	}
}

func TestGenerationsAndArchitectures(t *testing.T) {
	for _, c := range []struct {
		arch  string
		asked []string
		want  string
	}{
		{"x86_64", nil, "V2"}, {"x86_64", []string{"gen1", "V2", "2"}, "V1,V2"}, {"aarch64", nil, "V2"}, {"aarch64", []string{"v2"}, "V2"},
	} {
		got, err := Generations(c.arch, c.asked)
		if err != nil || strings.Join(got, ",") != c.want {
			t.Errorf("Generations(%s, %v) = %v %v", c.arch, c.asked, got, err)
		}
	}
	if _, err := Generations("x86_64", []string{"V3"}); err == nil || !strings.Contains(err.Error(), `"V3"`) {
		t.Errorf("V3: %v", err)
	}
	if a, _ := AzureArch("aarch64"); a != "Arm64" {
		t.Error(a)
	}
	if a, _ := AzureArch("x86_64"); a != "x64" {
		t.Error(a)
	}
}

func TestValidateNamesEveryBadField(t *testing.T) {
	p := Plan{
		Gallery: Gallery{SubscriptionID: "s", ResourceGroup: "r"},
		Definitions: []Definition{
			{Name: "a", HyperVGeneration: "V1", Architecture: "Arm64", Identifier: Identifier{"p", "o", "s"}},
			{Name: "a", HyperVGeneration: "V3", Architecture: "x86", Identifier: Identifier{"p", "o", "s"}},
			{Name: "b", HyperVGeneration: "V1", Architecture: "x64", SecurityType: "TrustedLaunchSupported", Identifier: Identifier{"p", "o", "t"}},
		},
		Versions: []Version{
			{Definition: "zz", Name: "1.2.3", Source: Source{"acct", "uri"}},
			{Definition: "a", Name: "1.2", StorageAccountType: "Cheap_LRS", Regions: []Region{{Name: "", Replicas: 0}, {Name: "x", Replicas: 101, StorageAccountType: "Nope"}}},
			{Definition: "a", Name: "1.2", Source: Source{"acct", "uri"}},
		},
	}
	err := p.Validate()
	if err == nil {
		t.Fatal("bad plan accepted")
	}
	for _, want := range []string{"gallery name are required", "Arm64 needs hyperv generation V2", "definition a: listed twice",
		`hyperv generation "V3"`, `architecture "x86"`, "security type TrustedLaunchSupported needs hyperv generation V2",
		"same identifier p/o/s", `definition "zz" is not in the plan`, `image version "1.2"`, "version 1.2 of a: listed twice",
		"needs a storage account id and a blob URI", `storage_account_type "Cheap_LRS"`, "target_region without a name",
		"replicas 0, want 1 to 100", "replicas 101", `storage_account_type "Nope"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
	good := Plan{Gallery: testGallery, Definitions: []Definition{{Name: "a", HyperVGeneration: "V2", Architecture: "Arm64"}},
		Versions: []Version{{Definition: "a", Name: "1.0.0", Source: Source{"acct", "uri"}, Regions: []Region{{Name: "x", Replicas: 100}, {Name: "y", Replicas: 1}}}}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseGalleryID(t *testing.T) {
	g, err := ParseGalleryID("/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/galleries/g1")
	if err != nil || g.SubscriptionID != "s1" || g.ResourceGroup != "rg1" || g.Name != "g1" {
		t.Fatalf("%+v %v", g, err)
	}
	if g.ID() != "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/galleries/g1" {
		t.Fatal(g.ID())
	}
	for _, bad := range []string{"", "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/galleries", "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Storage/galleries/g1",
		"/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/images/g1", "/subs/s1/resourceGroups/rg1/providers/Microsoft.Compute/galleries/g1",
		"/subscriptions/s1/groups/rg1/providers/Microsoft.Compute/galleries/g1", "/subscriptions/s1/resourceGroups/rg1/x/Microsoft.Compute/galleries/g1"} {
		if _, err := ParseGalleryID(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
