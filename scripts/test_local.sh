#!/usr/bin/env bash
# `make test-local`: stages 1 and 2 end to end on a single-node Ray cluster, submitted as Ray jobs.
#
#   ray start --head (127.0.0.1, free ports, its own --temp-dir)
#   → ray job submit -- python -m tracer1.run stage=1 ...      (short, shrunk run; trains and caches the SFT warm start)
#   → ray job submit -- python -m tracer1.run stage=2 checkpoint.init_from=<stage-1 run>/checkpoints/final ...
#   → checks: job status SUCCEEDED, the driver attached to this cluster (its actors ran here), report step counts,
#     metrics.jsonl steps, the final checkpoint's files, the HTML report
#   → stops this Ray (on success and on failure) and checks that none of its processes is left.
#
# Ray binds to 127.0.0.1 only: `ray start` turns --node-ip-address=127.0.0.1 into the machine's routable address
# unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (despite its name, the switch that makes Ray use the loopback address).
# Ray 2.60 turns token authentication on for a new cluster; this run uses a fresh token of its own
# (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN_PATH in the work directory), which the ray CLI, the checks here and the job
# drivers (started by the cluster, so they inherit it) all read; ~/.ray/auth_token is left alone.
# Only the processes of the Ray started here are stopped (found by this run's unique temp dir or GCS address in
# their command line, with their children): `ray stop --force` would SIGKILL every Ray process on the machine,
# other people's included.
# Extra `key=value` arguments go to both stages (after the defaults here), e.g.
#   scripts/test_local.sh algorithm.total_steps=0      # must fail: non-zero exit, Ray still stopped
# Environment: VENV (default .venv), TEST_LOCAL_KEEP=1 keeps the work directory (it is kept anyway on failure).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-.venv}
case $VENV in /*) ;; *) VENV=$ROOT/$VENV ;; esac
PY=$VENV/bin/python
RAY=$VENV/bin/ray
# One logical CPU per actor of stage 2 (rollout, reward, executor, learner). The job driver reserves none, so Ray
# runs it with OMP_NUM_THREADS=1: its SFT warm start and evaluations use one torch thread, which on a busy 2-core
# machine was ~5x faster than two (the SMALL SFT: ~2 s a step against ~10 s, at load 7-10).
NUM_CPUS=4
STEPS1=3
STEPS2=2
# The shrunk run the end-to-end tests use: a 30-step SFT warm start on 30 episodes, 2 prompts × 4 plans.
SMALL=(--config "$ROOT/configs/smoke.yaml")
EXTRA=("$@")

say() { printf '\n== test-local: %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() { printf '\n== test-local: FAILED: %s\n' "$*" >&2; exit 1; }

[ -x "$PY" ] && [ -x "$RAY" ] || fail "$PY or $RAY missing: run 'make install' first"
"$PY" -c "import ray.dashboard.modules.job.cli, aiohttp, aiohttp_cors, opencensus, prometheus_client" 2>/dev/null \
  || fail "ray[default] (dashboard and Jobs API) is not installed in $VENV: run 'make install'"

# A short path: Ray puts unix sockets under --temp-dir and their paths must stay under ~107 characters.
WORK=$(mktemp -d /tmp/t1l.XXXXXX)
OUT=$WORK/runs
STARTED=0
GCS_PORT=
T0=$SECONDS

# Every live process whose command line names $WORK or this cluster's GCS address (the Ray daemons, the job
# drivers), plus their descendants (workers, actors, agents). `stop` SIGKILLs them until none is left.
ray_procs() {
  "$PY" - "$1" "$WORK" "127.0.0.1:${GCS_PORT:-none}" <<'EOF'
import sys, time
import psutil

action, tags = sys.argv[1], sys.argv[2:]
me = psutil.Process()
skip = {me.pid, *(p.pid for p in me.parents())}

def ours():
    found = {}
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.pid not in skip and any(tag in " ".join(p.info["cmdline"] or ()) for tag in tags):
                found[p.pid] = p
                found.update((c.pid, c) for c in p.children(recursive=True) if c.pid not in skip)
        except psutil.Error:
            pass
    return list(found.values())

if action == "stop":
    for _ in range(10):
        procs = ours()
        if not procs:
            break
        for p in procs:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=5)
        time.sleep(0.5)
left = ours()
for p in left:
    try:
        print(f"   left: pid {p.pid}: {' '.join(p.cmdline())[:160]}")
    except psutil.Error:
        pass
sys.exit(1 if left else 0)
EOF
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ "$STARTED" = 1 ]; then
    say "stopping this Ray (every process of $WORK, not other Rays on the machine)"
    local n
    n=$(ray_procs list | wc -l)
    if ray_procs stop; then
      ok "stopped $n processes; none of this cluster's processes is left"
    else
      echo "   some processes of this cluster survived SIGKILL (listed above)" >&2
      [ $rc = 0 ] && rc=1
    fi
    if [ -n "$GCS_PORT" ] && "$PY" -c "import socket, sys; s = socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('127.0.0.1', $GCS_PORT)) != 0)"; then
      echo "   the GCS port $GCS_PORT still accepts connections" >&2
      [ $rc = 0 ] && rc=1
    else
      ok "nothing listens on the GCS port $GCS_PORT any more"
    fi
  fi
  if [ $rc = 0 ] && [ "${TEST_LOCAL_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  else
    echo "   work directory kept: $WORK (ray logs: $WORK/ray/session_latest/logs, job logs: $WORK/*.log)"
  fi
  if [ $rc = 0 ]; then
    say "PASSED in $((SECONDS - T0)) s"
  else
    say "FAILED (exit $rc) after $((SECONDS - T0)) s"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Free ports on 127.0.0.1 for every Ray port with a fixed default, so a Ray someone else runs here cannot clash.
read -r GCS_PORT DASH_PORT CLIENT_PORT AGENT_PORT < <("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
DASH=http://127.0.0.1:$DASH_PORT

say "starting a single-node Ray head: 127.0.0.1:$GCS_PORT, dashboard $DASH, $NUM_CPUS CPUs, temp dir $WORK/ray"
unset RAY_ADDRESS
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0   # loopback only (see the top of this file)
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$WORK/auth_token
unset RAY_AUTH_TOKEN
(umask 077 && "$PY" -c "import secrets; print(secrets.token_hex(32), end='')" >"$RAY_AUTH_TOKEN_PATH")
export PYTHONUNBUFFERED=1   # the job drivers' output reaches `ray job submit` as it is written
# Ray's memory monitor kills this cluster's workers (the job supervisor first) when the whole machine passes 95%
# memory, whoever uses it; on a shared development machine that fails the test for someone else's job.
export RAY_memory_monitor_refresh_ms=0
STARTED=1
"$RAY" start --head --node-ip-address=127.0.0.1 --port="$GCS_PORT" --num-cpus="$NUM_CPUS" --num-gpus=0 \
  --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port="$DASH_PORT" \
  --ray-client-server-port="$CLIENT_PORT" --dashboard-agent-listen-port="$AGENT_PORT" \
  --object-store-memory=$((512 * 1024 * 1024)) --temp-dir="$WORK/ray" --disable-usage-stats \
  >"$WORK/ray_start.log" 2>&1 || { cat "$WORK/ray_start.log"; fail "ray start --head failed"; }
"$PY" - "$DASH" <<'EOF' || fail "the Ray dashboard (Jobs API) at $DASH did not answer within 60 s"
import sys, time
from ray.job_submission import JobSubmissionClient

for _ in range(60):
    try:
        JobSubmissionClient(sys.argv[1]).list_jobs()  # the client sends the auth token like `ray job submit`
        sys.exit(0)
    except Exception as e:  # noqa: BLE001 - not up yet
        error = e
    time.sleep(1)
print(f"   last error: {error}")
sys.exit(1)
EOF
ok "Ray is up and its Jobs API answers ($((SECONDS - T0)) s)"

# Submits one stage as a Ray job and waits for it (`ray job submit` tails the job's log and exits 1 when the job
# FAILED; a STOPPED job exits 0, so the final status is checked separately).
submit() {
  local id=$1 rc status
  shift
  say "ray job submit --submission-id $id -- $PY -m tracer1.run $*"
  # In the background with `wait`, so that a TERM or INT sent to this script stops the cluster at once.
  ( "$RAY" job submit --address "$DASH" --submission-id "$id" -- "$PY" -m tracer1.run "$@" 2>&1 | tee "$WORK/$id.log"
    exit "${PIPESTATUS[0]}" ) &
  rc=0
  wait $! || rc=$?
  status=$("$PY" -c "import sys; from ray.job_submission import JobSubmissionClient as C
print(C(sys.argv[1]).get_job_status(sys.argv[2]).value)" "$DASH" "$id" 2>/dev/null || true)
  [ "$rc" = 0 ] || fail "job $id: ray job submit exited $rc (job status ${status:-unknown})"
  [ "$status" = SUCCEEDED ] || fail "job $id: status ${status:-unknown}, expected SUCCEEDED"
  ok "job $id: ray job submit exited 0, job status SUCCEEDED"
}

# The job's driver attached to this cluster instead of starting a Ray of its own: its log says so, and the
# cluster's state API lists the stage's actors under that job's id.
check_attached() {
  local id=$1
  shift
  grep -q "Connecting to existing Ray cluster at address: 127.0.0.1:$GCS_PORT" "$WORK/$id.log" \
    || fail "job $id: its log does not show the driver connecting to 127.0.0.1:$GCS_PORT"
  ! grep -q "Started a local Ray instance" "$WORK/$id.log" \
    || fail "job $id: the driver started a Ray of its own instead of attaching to this cluster"
  "$PY" - "$DASH" "$id" "$@" <<'EOF' || fail "job $id: its actors are not in this cluster"
import sys
from ray.job_submission import JobSubmissionClient
from ray.util.state import list_actors

dash, sid, want = sys.argv[1], sys.argv[2], sorted(sys.argv[3:])
job_id = JobSubmissionClient(dash).get_job_info(sid).job_id
got = sorted(a.class_name for a in list_actors(address=dash, filters=[("job_id", "=", job_id)], limit=1000)
             if a.class_name != "JobSupervisor")
print(f"   ok: job {sid} is Ray job {job_id}; its actors in this cluster: {', '.join(got) or 'none'}")
sys.exit(0 if got == want else 1)
EOF
  ok "job $id: the driver attached to this cluster (RAY_ADDRESS from ray job submit) and did not start a Ray"
}

# The run directory: report with the step count, metrics.jsonl with one line per step, a loadable-looking
# checkpoint.
check_run() {
  "$PY" - "$@" <<'EOF' || fail "run $1: outputs are not as expected (see above)"
import json, sys
from pathlib import Path

run, stage, steps = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
planner = sys.argv[4] if len(sys.argv) > 4 else None
problems = []

def check(cond, what):
    print(f"   {'ok' if cond else 'MISSING'}: {run.name}: {what}")
    if not cond:
        problems.append(what)

report_path = run / f"stage{stage}_report.json"
report = json.loads(report_path.read_text()) if report_path.is_file() else {}
check(report_path.is_file(), f"{report_path.name} exists")
check(report.get("steps") == steps, f"report steps == {steps} (got {report.get('steps')})")
check(bool(report.get("before")) and bool(report.get("after")), "report has held-out evaluation before and after")
if planner:
    check(report.get("planner") == planner, f"report planner == {planner} (got {report.get('planner')})")
metrics = run / "metrics.jsonl"
logged = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.is_file() else []
got = [m["step"] for m in logged if f"stage{stage}/reward_mean" in m]
check(got == list(range(1, steps + 1)), f"metrics.jsonl has stage{stage}/reward_mean for steps 1..{steps} (got {got})")
final = run / "checkpoints" / "final"
for name in ("model.safetensors", "config.json"):
    f = final / name
    check(f.is_file() and f.stat().st_size > 0, f"checkpoints/final/{name} exists, non-empty")
check((run / "config.yaml").is_file(), "config.yaml (resolved configuration) exists")
page = run / "report.html"
html = page.read_text() if page.is_file() else ""
check("data:image/png;base64," in html, "report.html exists with its curves embedded")
sys.exit(1 if problems else 0)
EOF
}

S1=$OUT/s1
S2=$OUT/s2
submit stage1 stage=1 "logging.out_dir=$OUT" run_name=s1 "algorithm.total_steps=$STEPS1" "${SMALL[@]}" "${EXTRA[@]}"
say "checking stage 1"
check_attached stage1 LearnerWorker RewardWorker RolloutWorker
check_run "$S1" 1 "$STEPS1"
ls -d "$OUT"/.cache/sft-* >/dev/null 2>&1 || fail "no SFT warm start cached under $OUT/.cache"
ok "the SFT warm start is cached: $(cd "$OUT/.cache" && ls -d sft-*)"

submit stage2 stage=2 "logging.out_dir=$OUT" run_name=s2 "algorithm.total_steps=$STEPS2" \
  "checkpoint.init_from=$S1/checkpoints/final" "${SMALL[@]}" "${EXTRA[@]}"
say "checking stage 2"
check_attached stage2 ExecutorWorker LearnerWorker RewardWorker RolloutWorker
check_run "$S2" 2 "$STEPS2" "$S1/checkpoints/final"
