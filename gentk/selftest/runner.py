"""Runs selftest cases in child processes, so that a kernel that faults (an illegal
address, a launch failure, an abort) takes down only the child: the case that was running
is recorded as crashed and a fresh child goes on with the next one."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_child.py")
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAX_CRASHES_PER_GROUP = 2  # then the rest of that (family, backend) is skipped


def run_cases(provider, spec, cases, *, stall_timeout_s=300.0, poll_s=0.05):
    """Results of ``cases`` (the list ``provider(**spec)`` returns, built here only for
    their names and groups) run in order in child processes: one dict per case with
    ``name``, ``status`` (pass, fail, error, crash, timeout, skipped), ``message``, ``detail``.

    A child that writes nothing for ``stall_timeout_s`` (a hung kernel) is killed."""
    results = [None] * len(cases)
    crashes = {}
    env = dict(os.environ, GENTK_SELFTEST="0",  # the child picks backends by name; never recurse
               PYTHONPATH=os.pathsep.join(p for p in (PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p))
    start = 0
    with tempfile.TemporaryDirectory(prefix="gentk-selftest-") as tmp:
        while start < len(cases):
            out_path, err_path = os.path.join(tmp, f"{start}.jsonl"), os.path.join(tmp, f"{start}.err")
            with open(err_path, "w") as err:
                proc = subprocess.Popen([sys.executable, CHILD, provider, out_path, str(start), json.dumps(spec)],
                                        stdout=err, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
                timed_out = _wait(proc, out_path, stall_timeout_s, poll_s)
            records = _read(out_path)
            running = None
            for r in records:
                if "index" in r:
                    if r["status"] == "started":
                        running = r["index"]
                    else:
                        results[r["index"]] = {k: r.get(k) for k in ("name", "status", "message", "detail")}
                        running = None
            if any(r.get("done") for r in records):
                break
            indices = [r["index"] for r in records if "index" in r]
            if running is None:  # died between cases: on purpose after a device error, or at start-up
                if indices:
                    start = max(indices) + 1
                    continue
                message = f"the selftest child failed {_how(proc.returncode)}: {_last_line(err_path)}"
                for i in range(start, len(cases)):
                    results[i] = {"name": cases[i].name, "status": "error", "message": message, "detail": None}
                break
            case = cases[running]
            status = "timeout" if timed_out else "crash"
            why = f"no progress for {stall_timeout_s:.0f} s" if timed_out else _how(proc.returncode)
            results[running] = {"name": case.name, "status": status,
                                "message": f"the child process {why}: {_last_line(err_path)}", "detail": None}
            crashes[case.group] = crashes.get(case.group, 0) + 1
            start = running + 1
            while crashes.get(case.group, 0) >= MAX_CRASHES_PER_GROUP and start < len(cases) \
                    and cases[start].group == case.group:
                results[start] = {"name": cases[start].name, "status": "skipped",
                                  "message": f"not run: {crashes[case.group]} crashes in {'/'.join(case.group)}",
                                  "detail": None}
                start += 1
    return results


def _wait(proc, out_path, stall_timeout_s, poll_s):
    """Waits for the child; kills it when its output file has not grown for the timeout."""
    size, last = -1, time.monotonic()
    while proc.poll() is None:
        now_size = os.path.getsize(out_path) if os.path.exists(out_path) else 0
        if now_size != size:
            size, last = now_size, time.monotonic()
        elif time.monotonic() - last > stall_timeout_s:
            proc.kill()
            proc.wait()
            return True
        time.sleep(poll_s)
    return False


def _read(path):
    records = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except ValueError:  # a line cut short by the crash
                    pass
    return records


def _how(returncode):
    if returncode is not None and returncode < 0:
        try:
            return f"died of {signal.Signals(-returncode).name}"
        except ValueError:
            return f"died of signal {-returncode}"
    return f"exited with status {returncode}"


def _last_line(path):
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1][:300] if lines else "(no output)"
