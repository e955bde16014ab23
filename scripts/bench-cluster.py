#!/usr/bin/env python3
"""weir's standalone cluster measured the way ../shared/anchors/flink/bench.py measures Flink's (phase C1).

A JobManager and two TaskManagers of one slot each (`weir cluster start`), Flink's default
heartbeats. Measures: cluster start until both TaskManagers registered, idle RSS of every
process, windowed-sum (N records) at p=1 and p=2 with checkpointing off and every 1 s (job
duration from REST, as Flink's harness reads it), RSS after the jobs; and `weir local` on the
same job for reference. Prints one JSON object.

  scripts/bench-cluster.py                     # weir only
  FLINK=1 scripts/bench-cluster.py             # then Flink 2.3's phase C1 in the same run, and ratios

Knobs (env): N (100000000), WEIR (path of the weir binary; default: builds target/release/weir).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(os.environ.get("N", 100_000_000))
REST_PORT, RPC_PORT = 18091, 16191


def log(*args):
    print("bench:", *args, file=sys.stderr, flush=True)


def weir_binary():
    if os.environ.get("WEIR"):
        return os.environ["WEIR"]
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "weir-nodes", "--bin", "weir"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "weir")


def rest(path):
    with urllib.request.urlopen(f"http://127.0.0.1:{REST_PORT}{path}", timeout=10) as response:
        return json.load(response)


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def job_file(directory, checkpoint_ms):
    text = open(os.path.join(ROOT, "examples", "windowed-sum.toml")).read()
    text = re.sub(r"to = [0-9_]+", f"to = {N - 1}", text)
    if checkpoint_ms:
        text += f'\n[config]\n"execution.checkpointing.interval" = "{checkpoint_ms} ms"\n'
    path = os.path.join(directory, f"windowed-sum-{checkpoint_ms}.toml")
    open(path, "w").write(text)
    return path


def run_job(weir, settings, path, parallelism):
    out = subprocess.run([weir, "run", "-d", "-p", str(parallelism), "-m", f"127.0.0.1:{REST_PORT}", path],
                         capture_output=True, text=True, check=True)
    jid = re.search(r"[0-9a-f]{32}", out.stdout).group(0)
    while True:
        job = rest(f"/jobs/{jid}")
        if job["state"] in ("FINISHED", "FAILED", "CANCELED"):
            break
        time.sleep(0.05)
    seconds = job["duration"] / 1000
    result = {"p": parallelism, "checkpoint_ms": 1000 if "1000" in path else 0, "state": job["state"],
              "duration_s": round(seconds, 3), "records_per_s": round(N / seconds) if seconds else None}
    log("throughput", result)
    return result


def measure_weir():
    weir = weir_binary()
    work = tempfile.mkdtemp(prefix="weir-bench-")
    settings = [f"jobmanager.rpc.port={RPC_PORT}", f"rest.port={REST_PORT}", "jobmanager.rpc.address=127.0.0.1",
                "rest.address=127.0.0.1", "taskmanager.host=127.0.0.1", "taskmanager.numberOfTaskSlots=1",
                f"high-availability.storageDir={work}/ha", f"execution.checkpointing.dir={work}/checkpoints"]
    flags = [arg for setting in settings for arg in ("-D", setting)]
    workers = os.path.join(work, "workers")
    open(workers, "w").write("localhost\nlocalhost\n")
    out = {}
    started = time.time()
    subprocess.run([weir, "cluster", "start", "--dir", f"{work}/cluster", "--workers", workers, *flags],
                   check=True, capture_output=True)
    out["cluster_start_s"] = round(time.time() - started, 3)
    log("cluster started in", out["cluster_start_s"], "s")
    pids = {name: int(open(f"{work}/cluster/{name}.pid").read())
            for name in ("jobmanager", "taskmanager-0", "taskmanager-1")}
    time.sleep(5)
    out["idle_rss_mb"] = {name: rss_mb(pid) for name, pid in pids.items()}
    try:
        jobs = {ms: job_file(work, ms) for ms in (0, 1000)}
        out["throughput_windowed_sum"] = [run_job(weir, settings, jobs[ms], p) for ms in (0, 1000) for p in (1, 2)]
        out["rss_after_throughput_mb"] = {name: rss_mb(pid) for name, pid in pids.items()}
    finally:
        subprocess.run([weir, "cluster", "stop", "--dir", f"{work}/cluster"], capture_output=True)
    local = subprocess.run([weir, "local", jobs[0], "-D", "rest.port=0"], capture_output=True, text=True)
    match = re.search(r"in ([0-9.]+) s \(([0-9.]+) M records/s\)", local.stdout)
    out["local_p1"] = {"seconds": float(match.group(1)), "records_per_s": round(float(match.group(2)) * 1e6)} \
        if match else local.stdout[-400:]
    shutil.rmtree(work, ignore_errors=True)
    return out


def measure_flink():
    anchor = os.path.join(os.path.dirname(ROOT), "shared", "anchors", "flink")
    env = dict(os.environ, PHASES="c1", THROUGHPUT_REPS="1", RECOVERY_SAMPLES="1", N=str(N))
    done = subprocess.run(["bash", os.path.join(anchor, "bench.sh")], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    return json.loads(done.stdout)


def main():
    result = {"machine": os.uname().nodename, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "records": N, "weir": measure_weir()}
    if os.environ.get("FLINK"):
        log("Flink 2.3 phase C1 ...")
        result["flink"] = measure_flink()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
