// Package bench measures the bid path end to end and compares it with a
// baseline built the obvious way: the same campaigns, targeting rules, model
// and pricing on net/http + encoding/json into github.com/prebid/openrtb/v20
// types (baseline.go). Benchmarks live in the _test files; the fixture (a
// generated campaign set, a budget manager that never runs dry, both
// handlers and the benchmark requests) is shared with cmd/loadcompare, which
// compares the two over real loopback HTTP. See docs/benchmarks.md.
package bench
