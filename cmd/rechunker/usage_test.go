package main

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// usageCase is one command line and how the real binary must answer it. In args, {tmp}
// stands for the test's temporary directory. Status 2 is a usage error, 1 a runtime one.
type usageCase struct {
	name   string
	args   []string
	code   int
	stderr string // a part of the message on stderr ("" only with status 0)
}

// usageCases covers every command: missing and extra arguments, unknown flags, bad flag
// values, flags that contradict each other, and one runtime failure (an image that does
// not exist) where the command opens one.
func usageCases() []usageCase {
	return []usageCase{
		{"root: no command prints help", nil, 0, ""},
		{"root: unknown flag", []string{"--bogus"}, 2, "unknown flag: --bogus"},
		{"root: unknown command", []string{"biuld"}, 2, `unknown command "biuld" for "rechunker"; did you mean build?`},
		{"root: flag without value", []string{"--cpuprofile"}, 2, "flag needs an argument: --cpuprofile"},

		{"build: nothing", []string{"build"}, 2, "--output is required"},
		{"build: no source", []string{"build", "--output", "oci:{tmp}/out"}, 2, "give exactly one of --from IMAGE and --rootfs DIR"},
		{"build: two sources", []string{"build", "--from", "oci:{tmp}/missing", "--rootfs", "{tmp}", "--output", "oci:{tmp}/out"}, 2, "give exactly one of"},
		{"build: argument", []string{"build", "extra", "--from", "oci:{tmp}/missing", "--output", "oci:{tmp}/out"}, 2, `unknown command "extra" for "rechunker build"`},
		{"build: unknown flag", []string{"build", "--bogus"}, 2, "unknown flag: --bogus"},
		{"build: --max-layers x", []string{"build", "--max-layers", "x", "--from", "oci:{tmp}/missing", "--output", "oci:{tmp}/out"}, 2, `invalid argument "x" for "--max-layers"`},
		{"build: --max-layers 0", []string{"build", "--max-layers", "0", "--from", "oci:{tmp}/missing", "--output", "oci:{tmp}/out"}, 2, "--max-layers 0: must be at least 1"},
		{"build: --compression xz", []string{"build", "--compression", "xz", "--from", "oci:{tmp}/missing", "--output", "oci:{tmp}/out"}, 2, `--compression "xz"`},
		{"build: --platform bad", []string{"build", "--platform", "bad", "--from", "oci:{tmp}/missing", "--output", "oci:{tmp}/out"}, 2, `platform "bad"`},
		{"build: missing image", []string{"build", "--from", "oci:{tmp}/missing", "--output", "oci:{tmp}/out"}, 1, "{tmp}/missing"},

		{"compose: no command prints help", []string{"compose"}, 0, ""},
		{"compose: unknown command", []string{"compose", "bogus"}, 2, `unknown command "bogus" for "rechunker compose"`},
		{"compose build-chunked-oci: nothing", []string{"compose", "build-chunked-oci"}, 2, "--output is required"},
		{"compose build-chunked-oci: argument", []string{"compose", "build-chunked-oci", "extra", "--from", "oci:{tmp}/missing", "--output", "oci:{tmp}/out"}, 2, `unknown command "extra"`},
		{"compose build-chunked-oci: unknown flag", []string{"compose", "build-chunked-oci", "--bogus"}, 2, "unknown flag: --bogus"},
		{"compose build-chunked-oci: --max-layers x", []string{"compose", "build-chunked-oci", "--max-layers", "x"}, 2, `invalid argument "x" for "--max-layers"`},
		{"compose build-chunked-oci: --platform bad", []string{"compose", "build-chunked-oci", "--platform", "bad", "--from", "oci:{tmp}/missing", "--output", "oci:{tmp}/out"}, 2, `platform "bad"`},
		{"compose build-chunked-oci: missing image", []string{"compose", "build-chunked-oci", "--from", "oci:{tmp}/missing", "--output", "oci:{tmp}/out"}, 1, "{tmp}/missing"},

		{"import: nothing", []string{"import"}, 2, "give exactly one of SOURCE"},
		{"import: two sources", []string{"import", "a", "b"}, 2, "accepts at most 1 arg(s), received 2"},
		{"import: image and --rootfs", []string{"import", "oci:{tmp}/missing", "--rootfs", "{tmp}"}, 2, "give exactly one of SOURCE"},
		{"import: unknown flag", []string{"import", "--bogus", "oci:{tmp}/missing"}, 2, "unknown flag: --bogus"},
		{"import: --platform bad", []string{"import", "--platform", "bad", "oci:{tmp}/missing"}, 2, `platform "bad"`},
		{"import: missing image", []string{"import", "oci:{tmp}/missing"}, 1, "{tmp}/missing"},

		{"ls: nothing", []string{"ls"}, 2, "give exactly one of SOURCE"},
		{"ls: three arguments", []string{"ls", "a", "b", "c"}, 2, "accepts between 0 and 2 arg(s), received 3"},
		{"ls: --rootfs and two arguments", []string{"ls", "--rootfs", "{tmp}", "a", "b"}, 2, "with --rootfs, give at most a PATH"},
		{"ls: unknown flag", []string{"ls", "--bogus", "oci:{tmp}/missing"}, 2, "unknown flag: --bogus"},
		{"ls: --platform bad", []string{"ls", "--platform", "bad", "oci:{tmp}/missing"}, 2, `platform "bad"`},
		{"ls: missing image", []string{"ls", "oci:{tmp}/missing"}, 1, "{tmp}/missing"},

		{"plan: nothing", []string{"plan"}, 2, "give exactly one of SOURCE"},
		{"plan: two sources", []string{"plan", "a", "b"}, 2, "accepts at most 1 arg(s), received 2"},
		{"plan: unknown flag", []string{"plan", "--bogus", "oci:{tmp}/missing"}, 2, "unknown flag: --bogus"},
		{"plan: --max-layers x", []string{"plan", "--max-layers", "x", "oci:{tmp}/missing"}, 2, `invalid argument "x" for "--max-layers"`},
		{"plan: --platform bad", []string{"plan", "--platform", "bad", "oci:{tmp}/missing"}, 2, `platform "bad"`},
		{"plan: missing image", []string{"plan", "oci:{tmp}/missing"}, 1, "{tmp}/missing"},

		{"verify: nothing", []string{"verify"}, 2, "accepts 1 arg(s), received 0"},
		{"verify: two images", []string{"verify", "a", "b"}, 2, "accepts 1 arg(s), received 2"},
		{"verify: unknown flag", []string{"verify", "--bogus", "oci:{tmp}/missing"}, 2, "unknown flag: --bogus"},
		{"verify: --sign-key foo", []string{"verify", "--sign-key", "foo", "oci:{tmp}/missing"}, 2, `--sign-key "foo": want ed25519=PATH`},
		{"verify: --platform bad", []string{"verify", "--platform", "bad", "oci:{tmp}/missing"}, 2, `platform "bad"`},
		{"verify: --arch contradicts --platform", []string{"verify", "--arch", "arm64", "--platform", "linux/amd64", "oci:{tmp}/missing"}, 2, "--arch arm64 contradicts --platform linux/amd64"},
		{"verify: missing image", []string{"verify", "oci:{tmp}/missing"}, 1, "{tmp}/missing"},

		{"diff: one image", []string{"diff", "a"}, 2, "accepts 2 arg(s), received 1"},
		{"diff: three images", []string{"diff", "a", "b", "c"}, 2, "accepts 2 arg(s), received 3"},
		{"diff: unknown flag", []string{"diff", "--bogus", "a", "b"}, 2, "unknown flag: --bogus"},
		{"diff: --tls-verify=maybe", []string{"diff", "--tls-verify=maybe", "a", "b"}, 2, `invalid argument "maybe" for "--tls-verify"`},
		{"diff: --changelog=xml", []string{"diff", "--changelog=xml", "oci:{tmp}/a", "oci:{tmp}/b"}, 2, "--changelog=xml: want text, markdown or json"},
		{"diff: --platform bad", []string{"diff", "--platform", "bad", "oci:{tmp}/a", "oci:{tmp}/b"}, 2, `platform "bad"`},
		{"diff: missing images", []string{"diff", "oci:{tmp}/a", "oci:{tmp}/b"}, 1, "{tmp}/a"},

		{"delta: nothing", []string{"delta"}, 2, "accepts 2 arg(s), received 0"},
		{"delta: no output", []string{"delta", "oci:{tmp}/a", "oci:{tmp}/b"}, 2, "--output is required"},
		{"delta: unknown flag", []string{"delta", "--bogus", "a", "b"}, 2, "unknown flag: --bogus"},
		{"delta: missing images", []string{"delta", "oci:{tmp}/a", "oci:{tmp}/b", "--output", "{tmp}/d.tar"}, 1, "{tmp}/a"},
		{"delta apply: nothing", []string{"delta", "apply"}, 2, "accepts 1 arg(s), received 0"},
		{"delta apply: no root or repo", []string{"delta", "apply", "{tmp}/d.tar", "--output", "oci-archive:{tmp}/o.tar"}, 2, "--output and one of --root and --repo are required"},
		{"delta apply: missing delta", []string{"delta", "apply", "{tmp}/missing.tar", "--root", "{tmp}", "--output", "oci-archive:{tmp}/o.tar"}, 1, "{tmp}/missing.tar"},

		{"inspect: nothing", []string{"inspect"}, 2, "accepts 1 arg(s), received 0"},
		{"inspect: two images", []string{"inspect", "a", "b"}, 2, "accepts 1 arg(s), received 2"},
		{"inspect: unknown flag", []string{"inspect", "--bogus", "oci:{tmp}/missing"}, 2, "unknown flag: --bogus"},
		{"inspect: --platform bad", []string{"inspect", "--platform", "bad", "oci:{tmp}/missing"}, 2, `platform "bad"`},
		{"inspect: missing image", []string{"inspect", "oci:{tmp}/missing"}, 1, "{tmp}/missing"},

		{"store: no command prints help", []string{"store"}, 0, ""},
		{"store: unknown command", []string{"store", "prun"}, 2, `unknown command "prun" for "rechunker store"; did you mean prune?`},
		{"store: unknown flag", []string{"store", "--bogus"}, 2, "unknown flag: --bogus"},
		{"store prune: argument", []string{"store", "prune", "x"}, 2, `unknown command "x" for "rechunker store prune"`},
		{"store prune: unknown flag", []string{"store", "prune", "--bogus"}, 2, "unknown flag: --bogus"},
		{"store prune: --older-than x", []string{"store", "prune", "--older-than", "x"}, 2, `invalid argument "x" for "--older-than"`},
		{"store prune: --older-than -1h", []string{"store", "prune", "--older-than", "-1h"}, 2, "--older-than must be positive"},
		{"store prune: --older-than without value", []string{"store", "prune", "--older-than"}, 2, "flag needs an argument: --older-than"},
		{"store prune: store under a file", []string{"store", "prune", "--store", "/dev/null/store"}, 1, "/dev/null/store"},

		{"version: argument", []string{"version", "x"}, 2, `unknown command "x" for "rechunker version"`},
		{"version: unknown flag", []string{"version", "--bogus"}, 2, "unknown flag: --bogus"},
		{"version: --json=maybe", []string{"version", "--json=maybe"}, 2, `invalid argument "maybe" for "--json"`},

		{"help: unknown topic", []string{"help", "bogus"}, 2, `unknown help topic "bogus"`},
		{"help: unknown subtopic", []string{"help", "store", "bogus"}, 2, `unknown help topic "store bogus"`},
		{"completion: no shell prints help", []string{"completion"}, 0, ""},
		{"completion: unknown shell", []string{"completion", "csh"}, 2, `unknown command "csh" for "rechunker completion"`},
		{"completion bash: argument", []string{"completion", "bash", "x"}, 2, `unknown command "x"`},
		{"completion zsh: unknown flag", []string{"completion", "zsh", "--bogus"}, 2, "unknown flag: --bogus"},
		{"completion fish: argument", []string{"completion", "fish", "x"}, 2, `unknown command "x"`},
		{"completion powershell: argument", []string{"completion", "powershell", "x"}, 2, `unknown command "x"`},
	}
}

// TestUsageErrors runs every case through the real binary: a usage error exits 2 with a
// message and a pointer to the command's help on stderr and nothing on stdout.
func TestUsageErrors(t *testing.T) {
	bin := rechunkerBin(t)
	require.NotEmpty(t, bin)
	for _, tc := range usageCases() {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				args[i] = strings.ReplaceAll(a, "{tmp}", tmp)
			}
			r := runBin(t, tmp, args...)
			require.Equal(t, tc.code, r.code, "%v\n%s", args, r)
			if tc.code == 0 {
				assert.Contains(t, r.stdout, "Usage:", "%v\n%s", args, r)
				return
			}
			assert.Contains(t, r.stderr, strings.ReplaceAll(tc.stderr, "{tmp}", tmp), "%v\n%s", args, r)
			assert.True(t, strings.HasPrefix(r.stderr, "rechunker: "), "%v\n%s", args, r)
			if tc.code == 2 {
				assert.Contains(t, r.stderr, " --help' for usage.", "%v\n%s", args, r)
				assert.Empty(t, r.stdout, "%v", args)
			}
			leftovers, err := filepath.Glob(filepath.Join(tmp, "out*"))
			require.NoError(t, err)
			assert.Empty(t, leftovers, "%v wrote an output", args)
		})
	}
}

// TestUsageCasesCoverEveryCommand keeps usageCases complete: a command added to the CLI
// (or by cobra) fails here until it has a usage error case.
func TestUsageCasesCoverEveryCommand(t *testing.T) {
	errorCases := map[string]bool{}
	for _, tc := range usageCases() {
		if tc.code != 2 {
			continue
		}
		cmd, _, err := newRootCmd().Find(tc.args)
		require.NoError(t, err, "%s: %v", tc.name, tc.args)
		errorCases[cmd.CommandPath()] = true
	}
	var missing []string
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if !errorCases[c.CommandPath()] {
			missing = append(missing, c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
	sort.Strings(missing)
	assert.Empty(t, missing, "commands without a usage error case in usageCases")
}
