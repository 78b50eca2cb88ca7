package docs

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// root is the repository's root, relative to this package.
const root = ".."

// scanned says which files are read for references: sources, scripts,
// documents and configuration.
func scanned(name string) bool {
	switch path.Ext(name) {
	case ".go", ".md", ".mjs", ".js", ".sh", ".conf", ".html", ".service", ".yml", ".yaml":
		return true
	}
	return path.Base(name) == "Makefile"
}

// skipped directories: dependencies, build output and test data that quote
// other projects.
func skipped(name string) bool {
	switch path.Base(name) {
	case ".git", "node_modules", "bin", "testdata":
		return true
	}
	return false
}

var (
	// mdRef is a reference to a Markdown file, optionally followed by a
	// section: `docs/spec/cluster.md §3.4`.
	mdRef = regexp.MustCompile("([A-Za-z0-9_./-]*[A-Za-z0-9_-]\\.md)\\b(?:[`)]?,? §([0-9]+(?:\\.[0-9]+)*))?")
	// decisionRef names a numbered decision of docs/design.md.
	decisionRef = regexp.MustCompile(`\b[Dd]ecisions? ([0-9]+)\b`)
	// mdLink is a Markdown link's target.
	mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// nickname names a document without its path ("DESIGN", "spec 3.4"),
	// which a newcomer cannot follow.
	nickname = regexp.MustCompile(`\bDESIGN(?:$|[^.\w])|(?:^|[^/.\w-])spec [0-9§]`)
	// decisionItem is a decision in docs/design.md: "N. **Title.**".
	decisionItem = regexp.MustCompile(`(?m)^([0-9]+)\. \*\*`)
)

// problem is one dangling reference.
type problem struct {
	file string
	line int
	what string
}

func (p problem) String() string { return fmt.Sprintf("%s:%d: %s", p.file, p.line, p.what) }

// checkReferences reads every scanned file of fsys and reports references
// to files that do not exist (relative to the referring file or to the
// root), to sections those files lack, and to decisions docs/design.md
// does not have.
func checkReferences(fsys fs.FS) ([]problem, error) {
	var probs []problem
	design, _ := fs.ReadFile(fsys, "docs/design.md")
	decisions := map[string]bool{}
	for _, m := range decisionItem.FindAllStringSubmatch(string(design), -1) {
		decisions[m[1]] = true
	}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name != "." && skipped(name) {
				return fs.SkipDir
			}
			return nil
		}
		if !scanned(name) {
			return nil
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		dir := path.Dir(name)
		// The protocol notes name other projects' files in prose; only
		// their links are checked.
		notes := strings.HasPrefix(name, "docs/spec/")
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			report := func(format string, args ...any) {
				probs = append(probs, problem{name, n, fmt.Sprintf(format, args...)})
			}
			for _, m := range mdRef.FindAllStringSubmatchIndex(line, -1) {
				if notes || inURL(line, m[0], m[1]) {
					continue
				}
				ref := line[m[2]:m[3]]
				target, ok := resolve(fsys, dir, ref)
				if !ok {
					report("%s does not exist", ref)
					continue
				}
				if m[4] >= 0 {
					if sec := line[m[4]:m[5]]; !hasSection(fsys, target, sec) {
						report("%s has no section %s", ref, sec)
					}
				}
			}
			for _, m := range nickname.FindAllString(line, -1) {
				if !notes {
					report("a document named without its path: %q", strings.Trim(m, "( "))
				}
			}
			for _, m := range decisionRef.FindAllStringSubmatch(line, -1) {
				if !decisions[m[1]] {
					report("docs/design.md has no decision %s", m[1])
				}
			}
			if path.Ext(name) != ".md" {
				continue
			}
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target, _, _ := strings.Cut(m[1], "#")
				if target == "" || strings.Contains(target, ":") {
					continue // an anchor, a URL or mailto
				}
				if _, ok := resolve(fsys, dir, target); !ok {
					report("link to %s: no such file", target)
				}
			}
		}
		return sc.Err()
	})
	return probs, err
}

// inURL says whether the match from i to j is part of a URL.
func inURL(line string, i, j int) bool {
	start := strings.LastIndexAny(line[:i], " \t(<\"'`") + 1
	return strings.Contains(line[start:j], "://")
}

// resolve finds ref relative to dir, then to the root.
func resolve(fsys fs.FS, dir, ref string) (string, bool) {
	for _, p := range []string{path.Join(dir, ref), path.Clean(ref)} {
		if strings.HasPrefix(p, "../") {
			continue
		}
		if _, err := fs.Stat(fsys, p); err == nil {
			return p, true
		}
	}
	return "", false
}

// hasSection says whether the Markdown file has a heading numbered sec
// ("## 3. ...", "### 3.4 ...").
func hasSection(fsys fs.FS, file, sec string) bool {
	b, err := fs.ReadFile(fsys, file)
	if err != nil {
		return false
	}
	re := regexp.MustCompile(`(?m)^#+ ` + regexp.QuoteMeta(sec) + `\.?\s`)
	return re.Match(b)
}

func TestReferencesResolve(t *testing.T) {
	probs, err := checkReferences(os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		if p.file == "docs/docs_test.go" {
			continue // the checker's own test names dangling files on purpose
		}
		t.Errorf("dangling reference: %v", p)
	}
}

// TestCheckerFindsDanglingReferences shows the checker is not blind: every
// kind of dangling reference in a small tree is reported, and none of the
// good ones.
func TestCheckerFindsDanglingReferences(t *testing.T) {
	fsys := fstest.MapFS{
		"docs/design.md":       {Data: []byte("# D\n\n1. **One.** x\n2. **Two.** y\n")},
		"docs/spec/cluster.md": {Data: []byte("# C\n## 3. Design\n### 3.4 Leases\n")},
		"README.md": {Data: []byte("See [design](docs/design.md), [gone](docs/gone.md), " +
			"[web](https://example.com/x.md) and [top](#top).\n")},
		"a/a.go": {Data: []byte("// docs/spec/cluster.md §3.4 and docs/spec/cluster.md §3 hold;\n" +
			"// decision 2 holds; see DESIGN.md, decision 7 and docs/spec/cluster.md §3.9.\n" +
			"// https://example.com/spec/sora.md is a URL.\n" +
			"// leases (spec 3.4) and docs/spec/cluster.md §3.4 and (DESIGN decision 2).\n")},
		"node_modules/x/README.md": {Data: []byte("gone.md\n")},
	}
	probs, err := checkReferences(fsys)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range probs {
		got = append(got, p.String())
	}
	want := []string{
		"README.md:1: docs/gone.md does not exist",
		"README.md:1: link to docs/gone.md: no such file",
		"a/a.go:2: DESIGN.md does not exist",
		"a/a.go:2: docs/spec/cluster.md has no section 3.9",
		"a/a.go:2: docs/design.md has no decision 7",
		`a/a.go:4: a document named without its path: "spec 3"`,
		`a/a.go:4: a document named without its path: "DESIGN"`,
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestPackageMapMatchesGoList: the README's package map names every
// package `go list ./...` knows, and names no Go package that is gone.
func TestPackageMapMatchesGoList(t *testing.T) {
	readme, err := os.ReadFile(root + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	mapped := packageMap(t, string(readme))
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}", root+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/hayate-sfu/hayate/"
	for _, p := range strings.Fields(string(out)) {
		p = strings.TrimPrefix(p, module)
		if !mapped[p] {
			t.Errorf("package %s is not in the README's package map", p)
		}
		delete(mapped, p)
	}
	for p := range mapped {
		if st, err := os.Stat(root + "/" + p); err != nil || !st.IsDir() {
			t.Errorf("the README's package map names %s, which does not exist", p)
		} else if goFiles(t, root+"/"+p) {
			t.Errorf("the README's package map names %s, which go list does not know", p)
		}
	}
}

// TestEveryPackageSaysWhatItOwns: every package of `go list ./...` has a
// package doc comment.
func TestEveryPackageSaysWhatItOwns(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}\t{{.Doc}}", root+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if p, doc, _ := strings.Cut(line, "\t"); strings.TrimSpace(doc) == "" {
			t.Errorf("package %s has no package doc comment", p)
		}
	}
}

// packageMap reads the entries of the code block under "## Package layout":
// each line that does not start with a space names a directory first.
func packageMap(t *testing.T, readme string) map[string]bool {
	t.Helper()
	_, after, ok := strings.Cut(readme, "\n## Package layout\n")
	if !ok {
		t.Fatal(`README has no "## Package layout" section`)
	}
	_, block, ok := strings.Cut(after, "```\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("the package layout has no code block")
	}
	m := map[string]bool{}
	for _, line := range strings.Split(block, "\n") {
		if line == "" || line[0] == ' ' {
			continue
		}
		m[strings.TrimSuffix(strings.Fields(line)[0], "/")] = true
	}
	return m
}

// goFiles says whether dir holds Go files of its own.
func goFiles(t *testing.T, dir string) bool {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".go") {
			return true
		}
	}
	return false
}
