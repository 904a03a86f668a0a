# Sourced by the scripts here (. "$(dirname "$0")/lib.sh"): a temporary
# directory $dir removed at exit; $pid, the server under test started in the
# background, stopped by stop and at exit; $pin0 and $pin1, the taskset
# prefixes of the server (CPU 0) and the load (CPU 1), empty without
# taskset; and waitready.
dir=$(mktemp -d)
pid=
stop() { if [ -n "$pid" ]; then kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; fi; pid=; }
trap 'stop; rm -rf "$dir"' EXIT
pin0= pin1=
if command -v taskset >/dev/null; then
	pin0="taskset -c 0" pin1="taskset -c 1"
fi

# waitready URL [LOG]: waits up to 60 s for URL to answer 2xx; else prints
# LOG's last lines and exits.
waitready() {
	i=0
	until curl -sf -o /dev/null "$1"; do
		i=$((i + 1))
		if [ $i -gt 600 ]; then
			echo "not ready in 60 s: $1" >&2
			[ -z "${2:-}" ] || tail -5 "$2" >&2
			exit 1
		fi
		sleep 0.1
	done
}
