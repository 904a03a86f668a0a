package main

// result is out/bench-e2e/result.json: every figure of one run, and what it
// ran on. docs/benchmarks.md's whole-server tables and plot.svg are
// rendered from it alone (e2e -render).
type result struct {
	Schema  int      `json:"schema"`
	Date    string   `json:"date"` // RFC 3339, start of the run
	Commit  string   `json:"commit"`
	Dirty   bool     `json:"dirty"` // uncommitted changes in the tree
	Command string   `json:"command"`
	Machine machine  `json:"machine"`
	Load    loadInfo `json:"load"`
	Set     settings `json:"settings"`
	// Trivial is the fasthttp 204 server, measured first and last: the
	// ratios use their mean.
	Trivial []closedLoop `json:"trivial"`
	// TrivialLadder is the trivial server again, open loop at the rates of
	// the bidder's ladder steps (during its last run): what the machine,
	// the kernel and the generator cost at that rate with no work at all.
	TrivialLadder []floorStep `json:"trivial_open_loop,omitempty"`
	Servers       []serverRun `json:"servers"`
	Idle          *idleRun    `json:"idle,omitempty"`
	Targets       []target    `json:"targets"`
	Seconds       float64     `json:"seconds"` // the whole run
}

type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	Wrk       string `json:"wrk"`
	Pinned    bool   `json:"pinned"`
	ServerCPU string `json:"server_cpu,omitempty"` // taskset list of the server under test
	LoadCPU   string `json:"load_cpu,omitempty"`   // of wrk, the open-loop generator and the harness
	Placement string `json:"placement"`            // in words
}

// loadInfo is the machine's load around the run: it is shared and noisy.
type loadInfo struct {
	UptimeBefore string `json:"uptime_before"`
	UptimeAfter  string `json:"uptime_after"`
	Before       string `json:"loadavg_before"` // /proc/loadavg
	After        string `json:"loadavg_after"`
}

type settings struct {
	Duration     float64   `json:"duration_s"`      // each measured closed-loop run and ladder step
	Warmup       float64   `json:"warmup_s"`        // unmeasured wrk run before each closed loop
	StepWarmup   float64   `json:"step_warmup_s"`   // unmeasured open-loop run before each step
	Settle       float64   `json:"idle_settle_s"`   // after ready, before the idle window
	IdleWindow   float64   `json:"idle_window_s"`   // CPU time measured over this
	WrkConns     int       `json:"wrk_connections"` // -c
	WrkThreads   int       `json:"wrk_threads"`     // -t
	OLConns      int       `json:"open_loop_connections"`
	Ladder       []float64 `json:"ladder"` // fractions of the closed-loop saturation
	RequestBytes int       `json:"request_bytes"`
	Request      string    `json:"request"` // what it is
	Campaigns    string    `json:"campaigns"`
	BidderConfig string    `json:"bidder_config"` // the config the bidder ran with
}

// closedLoop is one wrk run and, for the bidder, its own counts.
type closedLoop struct {
	Wrk   wrkResult `json:"wrk"`
	Ratio float64   `json:"ratio_to_trivial,omitempty"`
	// Beside is the trivial server's closed-loop rate measured just before
	// this run, on the same CPU, while this server sat ready and idle on it
	// (its idle cost is under 1% of a core), and BesideRatio this run's
	// ratio to it: the machine drifts over a whole run (the first and last
	// trivial runs have differed by half), much less over a minute.
	Beside      float64 `json:"trivial_beside_req_s,omitempty"`
	BesideRatio float64 `json:"ratio_to_trivial_beside,omitempty"`
	// ServerCPU is the CPU time the server got over the measured window,
	// in cores (1 for a saturated server alone on its CPU; less when other
	// work on the machine took its CPU). PerCPUSecond is requests per
	// second of that CPU time, and CPURatio its ratio to the trivial
	// server's: the comparison the machine's other load disturbs least.
	ServerCPU float64 `json:"server_cpu_cores"`
	// RunWait is the time its threads were runnable but waited for a CPU
	// (/proc/PID/task/*/schedstat), in cores: high means other work took
	// its CPU; low with ServerCPU under 1 means it was not CPU-bound (it
	// waited on something else, or the load generator was the limit).
	RunWait      float64 `json:"server_run_wait_cores"`
	PerCPUSecond float64 `json:"req_per_cpu_s"`
	CPURatio     float64 `json:"per_cpu_ratio_to_trivial,omitempty"`
	// Requests and Bids are the server's own counts over the measured
	// window (the bidder's /metrics, the baseline's counting wrapper).
	Requests float64            `json:"server_requests"`
	Bids     float64            `json:"server_bids"`
	BidShare float64            `json:"bid_share"`
	NoBids   map[string]float64 `json:"nobids_by_reason,omitempty"`
	Server   *serverLatency     `json:"server_latency,omitempty"` // the bidder's histogram
	Model    *modelUse          `json:"model,omitempty"`
}

// modelUse is what the bidder's scorer chain did over a window.
type modelUse struct {
	Chain      string             `json:"chain"`    // openbidder_model_info chain label
	Provider   string             `json:"provider"` // ONNX execution provider
	Rows       float64            `json:"scored_rows"`
	PerRequest float64            `json:"scored_rows_per_request"`
	Calls      map[string]float64 `json:"calls,omitempty"`     // primary, fallback
	Fallbacks  map[string]float64 `json:"fallbacks,omitempty"` // by reason
	Trimmed    float64            `json:"trimmed_requests"`
}

// serverRun is one server under test at one campaign count.
type serverRun struct {
	Name      string       `json:"name"` // bidder | baseline
	Campaigns int          `json:"campaigns"`
	ReadyIn   float64      `json:"ready_s"` // from start to answering
	Closed    closedLoop   `json:"closed_loop"`
	Ladder    []ladderStep `json:"open_loop,omitempty"`
	RSSMiB    float64      `json:"rss_mib_after"` // at the end of its measurements
	PeakMiB   float64      `json:"rss_peak_mib"`
	Log       string       `json:"log"`
	Error     string       `json:"error,omitempty"` // the run was cut short
}

// ladderStep is one open-loop step.
type ladderStep struct {
	Fraction float64        `json:"fraction"`
	Client   openLoopResult `json:"client"`
	Server   *serverLatency `json:"server_latency,omitempty"`
	Requests float64        `json:"server_requests"`
	Bids     float64        `json:"server_bids"`
	BidShare float64        `json:"bid_share"`
	stepCPU
}

// floorStep is the trivial server open loop at the rate of the bidder's
// step at Campaigns and Fraction.
type floorStep struct {
	Campaigns int            `json:"campaigns"`
	Fraction  float64        `json:"fraction"`
	Client    openLoopResult `json:"client"`
	stepCPU
}

// stepCPU is where the CPU went during an open-loop step. On this kind of
// machine a request that wakes an idle CPU costs several times what it
// costs in a saturated closed loop, so half of the closed-loop saturation
// is not half of the server's CPU.
type stepCPU struct {
	// ServerCPU is the server process's CPU time over the step, in cores,
	// and CPUPerRequest that time per answered request (µs).
	ServerCPU     float64 `json:"server_cpu_cores"`
	CPUPerRequest float64 `json:"server_cpu_us_per_request"`
	// ServerCoreBusy and LoadCoreBusy are the shares of the server's CPUs
	// and of the load generator's that were busy with anything (processes,
	// the kernel's network work, interrupts): from /proc/stat, only when
	// the two are pinned apart. A load CPU near 1 means the generator, not
	// the server, set the latency.
	ServerCoreBusy float64 `json:"server_cpus_busy,omitempty"`
	LoadCoreBusy   float64 `json:"load_cpus_busy,omitempty"`
}

// idleRun is the bidder's CPU and memory with no traffic.
type idleRun struct {
	Campaigns  int     `json:"campaigns"`
	Settle     float64 `json:"settle_s"`
	Window     float64 `json:"window_s"`
	CPUSeconds float64 `json:"cpu_s"`
	CPUPercent float64 `json:"cpu_percent_of_core"`
	RSSMiB     float64 `json:"rss_mib"`
	PeakMiB    float64 `json:"rss_peak_mib"`
}

// target is one of the aims, checked against the figures.
type target struct {
	Name   string `json:"name"`
	Want   string `json:"want"`
	Got    string `json:"got"`
	Status string `json:"status"` // PASS, MISS, UNSURE (bucket straddles the limit), SKIP (not measured)
}
