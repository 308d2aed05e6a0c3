# Sourced by the serving benchmarks: wait_port PID PORT waits (up to a minute) until the server
# process PID answers /health on PORT; false if it exits first or never answers.
wait_port() {
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$2/health" >/dev/null 2>&1 && return 0
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
