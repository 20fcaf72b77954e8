// Package units formats byte counts for people: one formatter, decimal units (kB, MB,
// GB as registries and `podman images` show them), for every command and message.
package units

import "fmt"

// Bytes formats a byte count with decimal units, e.g. "12.3 MB"; "?" for a negative count.
func Bytes(n int64) string {
	if n < 0 {
		return "?"
	}
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	names := []string{"kB", "MB", "GB", "TB", "PB", "EB"}
	v := float64(n) / 1000
	i := 0
	for v >= 999.95 && i < len(names)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.1f %s", v, names[i])
}
