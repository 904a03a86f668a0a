//go:build race

package bench

// raceEnabled: measurement-only tests skip under the race detector.
const raceEnabled = true
