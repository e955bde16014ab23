"""weir's side of the benchmark suite (scripts/bench.py): `weir local`, a standalone cluster of
real JobManager and TaskManager processes, and the `weir bench` / `weir sim` subcommands.

Every function returns a dict of figures; nothing here prints to stdout (progress goes to stderr).
The cluster measurements mirror ../shared/anchors/flink/bench.py so the two read alike: the same
windowed-sum and long-running jobs, the same layout (one slot per TaskManager), durations from
the REST API's job `duration`, recovery by `kill -9` of the TaskManager that runs the job.
"""
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REST_PORT, RPC_PORT = 18091, 16191  # each cluster takes fresh free ports (free_port)
LONG_RATE = 200_000  # records/s per subtask, as the Flink anchor's LongRun
TERMINAL = ("FINISHED", "FAILED", "CANCELED")


def log(*args):
    print(f"[bench {time.strftime('%H:%M:%S')}]", *args, file=sys.stderr, flush=True)


def free_port():
    """A TCP port nothing listens on now (other jobs on this machine may hold fixed ones)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rest(path, method="GET", timeout=5):
    request = urllib.request.Request(f"http://127.0.0.1:{REST_PORT}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return json.loads(raw) if raw else {}
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
        return None


def rest_at(port, path):
    """GET a JSON body from the REST port `port`; None unless 200 (a standby answers 503)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return json.loads(response.read() or b"{}")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
        return None


def proc_mb(pid, file, field):
    """A `field: N kB` line of /proc/PID/FILE, in MB; None when the process is gone."""
    try:
        with open(f"/proc/{pid}/{file}") as lines:
            for line in lines:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def rss_mb(pid):
    return proc_mb(pid, "status", "VmRSS")


def pss_mb(pid):
    """Proportional set size: private pages plus a share of the pages it shares (the weir binary's
    code, mapped by every weir process) per process sharing them."""
    return proc_mb(pid, "smaps_rollup", "Pss")


def cpu_seconds(pids):
    """User + system CPU time of live processes, in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def listening_ports(pid):
    """TCP ports the process listens on (its socket inodes matched against /proc/net/tcp*)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def task_counts(job):
    counts = job.get("status-counts") or {}
    return sum(counts.values()), counts


def job_file(work, name, records=None, rate=None, checkpoint_ms=0, extra=None):
    """examples/windowed-sum.toml with N records (or unbounded and rate-limited) and a [config]."""
    text = open(os.path.join(ROOT, "examples", "windowed-sum.toml")).read()
    text = re.sub(r"to = [0-9_]+", f"to = {records - 1 if records else 9_000_000_000_000_000}", text)
    if rate:
        text = text.replace('type = "sequence"\n', f'type = "sequence"\nrate = {rate}\n', 1)
    config = dict(extra or {})
    if checkpoint_ms:
        config["execution.checkpointing.interval"] = f"{checkpoint_ms} ms"
    if config:
        text += "\n[config]\n" + "".join(f'"{key}" = "{value}"\n' for key, value in config.items())
    path = os.path.join(work, f"{name}.toml")
    open(path, "w").write(text)
    return path


class Weir:
    def __init__(self, binary, work):
        self.binary = binary
        self.work = work

    def run(self, *args, check=True, timeout=900):
        done = subprocess.run([self.binary, *map(str, args)], capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"weir {' '.join(map(str, args))}: exit {done.returncode}: {done.stderr[-1500:]}")
        return done

    # ---------------------------------------------------------------------------------- local
    def local(self, records, parallelism, checkpoint_ms=0, chaining=True):
        """`weir local` on windowed-sum: records/s over the job's wall time, and per CPU-second."""
        extra = {"execution.checkpointing.dir": f"{self.work}/local-checkpoints"}
        if not chaining:
            extra["pipeline.operator-chaining.enabled"] = "false"
        path = job_file(self.work, f"local-{parallelism}-{checkpoint_ms}-{chaining}", records,
                        checkpoint_ms=checkpoint_ms, extra=extra)
        cpu_before = children_cpu_seconds()
        done = self.run("local", path, "-p", parallelism, "-D", "rest.port=0")
        cpu = children_cpu_seconds() - cpu_before
        match = re.search(r"(\d+) records from the sources in ([0-9.]+) s .*?(\d+) checkpoints", done.stdout)
        if not match:
            raise RuntimeError(f"weir local printed no summary: {done.stdout[-800:]}")
        seconds = float(match.group(2))
        result = {"mode": "local", "p": parallelism, "checkpoint_ms": checkpoint_ms, "chaining": chaining,
                  "records": int(match.group(1)), "seconds": seconds,
                  "records_per_s": round(int(match.group(1)) / seconds), "cpu_s": round(cpu, 2),
                  "records_per_cpu_s": round(int(match.group(1)) / cpu) if cpu else None,
                  "checkpoints": int(match.group(3))}
        log("local", result)
        return result

    # -------------------------------------------------------------------------------- cluster
    def cluster_flags(self, name, heartbeats=None):
        settings = [f"jobmanager.rpc.port={RPC_PORT}", f"rest.port={REST_PORT}", "jobmanager.rpc.address=127.0.0.1",
                    "rest.address=127.0.0.1", "taskmanager.host=127.0.0.1", "taskmanager.numberOfTaskSlots=1",
                    f"high-availability.storageDir={self.work}/{name}-ha",
                    f"execution.checkpointing.dir={self.work}/{name}-checkpoints"]
        if heartbeats:
            settings += [f"heartbeat.interval={heartbeats[0]}", f"heartbeat.timeout={heartbeats[1]}"]
        return [arg for setting in settings for arg in ("-D", setting)]

    def start_cluster(self, name, task_managers, heartbeats=None):
        """`weir cluster start` (returns once every TaskManager registered); its wall time and pids."""
        global REST_PORT, RPC_PORT
        REST_PORT, RPC_PORT = free_port(), free_port()
        directory = os.path.join(self.work, name)
        workers = os.path.join(self.work, f"workers-{task_managers}")
        open(workers, "w").write("localhost\n" * task_managers)
        started = time.time()
        done = self.run("cluster", "start", "--dir", directory, "--workers", workers,
                        *self.cluster_flags(name, heartbeats), check=False)
        seconds = time.time() - started
        if done.returncode != 0:
            self.stop_cluster(directory)
            logs = os.path.join(directory, "log")
            tails = {name: open(os.path.join(logs, name)).read()[-600:] for name in sorted(os.listdir(logs))} \
                if os.path.isdir(logs) else {}
            raise RuntimeError(f"weir cluster start {name}: {done.stderr[-600:]}; logs: {tails}")
        overview = rest("/overview") or {}
        if overview.get("taskmanagers") != task_managers:
            raise RuntimeError(f"cluster {name}: {overview.get('taskmanagers')} TaskManagers registered")
        pids = {"jm": int(open(f"{directory}/jobmanager.pid").read())}
        for index in range(task_managers):
            pids[f"tm-{index}"] = int(open(f"{directory}/taskmanager-{index}.pid").read())
        return directory, pids, round(seconds, 3)

    def stop_cluster(self, directory):
        self.run("cluster", "stop", "--dir", directory, check=False)

    def submit(self, path, parallelism):
        done = self.run("run", "-d", "-p", parallelism, "-m", f"127.0.0.1:{REST_PORT}", path)
        return re.search(r"[0-9a-f]{32}", done.stdout).group(0)

    def wait_job(self, jid, states, timeout=600, poll=0.05):
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = rest(f"/jobs/{jid}")
            if job and job["state"] in states:
                return job
            time.sleep(poll)
        raise RuntimeError(f"job {jid} not {states} within {timeout} s")

    def cancel(self, jid):
        rest(f"/jobs/{jid}?mode=cancel", method="PATCH")
        self.wait_job(jid, TERMINAL, timeout=30)

    def cluster_throughput(self, path, parallelism, checkpoint_ms, records, pids):
        cpu_before = cpu_seconds(pids.values())
        jid = self.submit(path, parallelism)
        job = self.wait_job(jid, TERMINAL)
        cpu = cpu_seconds(pids.values()) - cpu_before
        seconds = job["duration"] / 1000
        checkpoints = rest(f"/jobs/{jid}/checkpoints") or {}
        durations = (checkpoints.get("summary") or {}).get("end_to_end_duration") or {}
        result = {"mode": "cluster", "p": parallelism, "checkpoint_ms": checkpoint_ms, "state": job["state"],
                  "seconds": seconds, "records_per_s": round(records / seconds) if seconds else None,
                  "cpu_s": round(cpu, 2), "records_per_cpu_s": round(records / cpu) if cpu else None,
                  "checkpoints": (checkpoints.get("counts") or {}).get("completed"),
                  "checkpoint_ms_p50": durations.get("p50"), "checkpoint_ms_p99": durations.get("p99")}
        log("cluster", result)
        return result

    def submission(self, path):
        """`weir run -d` until REST shows every task RUNNING (client side, as the anchor measures)."""
        started = time.time()
        jid = self.submit(path, 1)
        returned = time.time()
        while time.time() - started < 60:
            job = rest(f"/jobs/{jid}")
            if job:
                total, counts = task_counts(job)
                if total and counts.get("RUNNING", 0) == total:
                    break
            time.sleep(0.005)
        all_running = time.time()
        self.cancel(jid)
        return {"cli_start_to_all_tasks_running_s": round(all_running - started, 3),
                "cli_wall_s": round(returned - started, 3)}

    def steady_state(self, parallelism, checkpoint_ms, window_s, pids):
        """An unbounded windowed-sum: source records/s over a window after a warm-up, read from the
        REST API's vertex metrics; unlike a bounded job's duration, no end-of-job wait for a final
        checkpoint is in it."""
        path = job_file(self.work, f"steady-{checkpoint_ms}", None, checkpoint_ms=checkpoint_ms)
        jid = self.submit(path, parallelism)

        def source_records():
            job = rest(f"/jobs/{jid}") or {"vertices": [{}]}
            return (job["vertices"][0].get("metrics") or {}).get("write-records", 0), time.time()

        try:
            self.wait_job(jid, ("RUNNING",))
            time.sleep(2)
            (first, at), cpu_before = source_records(), cpu_seconds(pids.values())
            time.sleep(window_s)
            (last, until), cpu = source_records(), cpu_seconds(pids.values()) - cpu_before
            checkpoints = ((rest(f"/jobs/{jid}/checkpoints") or {}).get("summary") or {}).get("end_to_end_duration")
        finally:
            self.cancel(jid)
        result = {"mode": "cluster-steady", "p": parallelism, "checkpoint_ms": checkpoint_ms,
                  "records_per_s": round((last - first) / (until - at)),
                  "records_per_cpu_s": round((last - first) / cpu) if cpu else None,
                  "checkpoint_ms_p50": (checkpoints or {}).get("p50"),
                  "checkpoint_ms_p99": (checkpoints or {}).get("p99")}
        log("steady", result)
        return result

    def cluster(self, records, parallelisms, submissions=3, window_s=6):
        """JobManager + 2 TaskManagers: start, RSS, windowed-sum throughput, submission latency."""
        out = {}
        directory, pids, out["start_to_all_tms_registered_s"] = self.start_cluster("cluster-c1", 2)
        log("cluster started in", out["start_to_all_tms_registered_s"], "s")
        try:
            time.sleep(3)
            out["idle_rss_mb"] = {name: rss_mb(pid) for name, pid in pids.items()}
            out["idle_pss_mb"] = {name: pss_mb(pid) for name, pid in pids.items()}
            out["throughput"] = []
            for checkpoint_ms in (0, 1000):
                path = job_file(self.work, f"cluster-{checkpoint_ms}", records, checkpoint_ms=checkpoint_ms)
                for parallelism in parallelisms:
                    out["throughput"].append(self.cluster_throughput(path, parallelism, checkpoint_ms, records, pids))
            out["rss_after_jobs_mb"] = {name: rss_mb(pid) for name, pid in pids.items()}
            out["pss_after_jobs_mb"] = {name: pss_mb(pid) for name, pid in pids.items()}
            out["steady_state"] = [self.steady_state(parallelism, checkpoint_ms, window_s, pids)
                                   for parallelism in parallelisms for checkpoint_ms in (0, 1000)]
            long_run = self.long_run_file("submission")
            out["submission"] = [self.submission(long_run) for _ in range(submissions)]
        finally:
            self.stop_cluster(directory)
        return out

    # ------------------------------------------------------------------------------- recovery
    def long_run_file(self, name):
        return job_file(self.work, f"long-run-{name}", rate=LONG_RATE, checkpoint_ms=1000,
                        extra={"restart-strategy.type": "fixed-delay",
                               "restart-strategy.fixed-delay.attempts": "1000",
                               "restart-strategy.fixed-delay.delay": "100 ms"})

    def recovery(self, samples, heartbeats=None):
        """kill -9 of the TaskManager running a checkpointing job while spare TaskManagers have free
        slots: kill until the JobManager records the failure, until every task RUNNING again, until
        the first checkpoint completed after the restore (the first new committed output)."""
        label = f"hb-{heartbeats[0]}-{heartbeats[1]}" if heartbeats else "default"
        directory, pids, _ = self.start_cluster(f"recovery-{label}".replace(" ", ""), samples + 1, heartbeats)
        path = self.long_run_file(label.replace(" ", ""))
        results = []
        try:
            for _ in range(samples):
                jid = self.submit(path, 1)
                self.wait_checkpoints(jid, 3)
                results.append(self.kill_busy(jid, pids))
                self.cancel(jid)
        finally:
            self.stop_cluster(directory)
        return results

    def wait_checkpoints(self, jid, count, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            checkpoints = rest(f"/jobs/{jid}/checkpoints")
            if checkpoints and checkpoints["counts"]["completed"] >= count:
                return checkpoints
            time.sleep(0.1)
        raise RuntimeError(f"job {jid}: {count} checkpoints not completed within {timeout} s")

    def kill_busy(self, jid, pids):
        busy_ports = set()
        for tm in rest("/taskmanagers")["taskmanagers"]:
            if tm["freeSlots"] < tm["slotsNumber"]:
                busy_ports.add(int(tm["path"].rsplit(":", 1)[1]))
        victims = [name for name, pid in pids.items() if name != "jm" and listening_ports(pid) & busy_ports]
        if len(victims) != 1:
            raise RuntimeError(f"cannot tell which TaskManager runs the job: {victims}")
        victim = victims[0]
        t_kill = time.time()
        os.kill(pids.pop(victim), signal.SIGKILL)
        first_change = all_running = None
        while time.time() - t_kill < 120:
            job = rest(f"/jobs/{jid}")
            now = time.time() - t_kill
            if job:
                total, counts = task_counts(job)
                changed = job["state"] != "RUNNING" or counts.get("RUNNING", 0) != total
                if first_change is None and changed:
                    first_change = now
                if first_change is not None and not changed:
                    all_running = now
                    break
            time.sleep(0.01)
        entries = ((rest(f"/jobs/{jid}/exceptions") or {}).get("exceptionHistory") or {}).get("entries") or []
        first_checkpoint = None
        while all_running is not None and time.time() - t_kill < 60:
            completed = ((rest(f"/jobs/{jid}/checkpoints") or {}).get("latest") or {}).get("completed") or {}
            if completed.get("latest_ack_timestamp", 0) / 1000 > t_kill + all_running:
                first_checkpoint = round(completed["latest_ack_timestamp"] / 1000 - t_kill, 3)
                break
            time.sleep(0.02)
        result = {"victim": victim,
                  "kill_to_jm_failure_timestamp_s": round(entries[0]["timestamp"] / 1000 - t_kill, 3)
                  if entries else None,
                  "kill_to_first_observed_change_s": round(first_change, 3) if first_change is not None else None,
                  "kill_to_all_tasks_running_again_s": round(all_running, 3) if all_running is not None else None,
                  "kill_to_first_checkpoint_after_restore_s": first_checkpoint}
        log("recovery", result)
        return result

    # ------------------------------------------------------------------------ leader failover
    def failover(self, runs, lease="2 s"):
        """Two JobManagers with `file` HA and two TaskManagers; a checkpointing job; `kill -9` of the
        leader. Per run: kill until the standby shows the job RUNNING, and until every task RUNNING."""
        samples = []
        for run in range(runs):
            samples.append(self.failover_once(run, lease))
            log("failover", samples[-1])
        return {"lease": lease, "renew_interval": "500 ms", "lease_margin": "500 ms", "runs": samples}

    def failover_once(self, run, lease):
        work = os.path.join(self.work, f"failover-{run}")
        os.makedirs(work, exist_ok=True)
        settings = ["high-availability.type=file", f"high-availability.storageDir={work}/ha",
                    "high-availability.cluster-id=bench", f"high-availability.lease-duration={lease}",
                    "high-availability.renew-interval=500 ms", "high-availability.lease-margin=500 ms",
                    "jobmanager.rpc.address=127.0.0.1", f"jobmanager.rpc.port={free_port()}",
                    "rest.address=127.0.0.1", "taskmanager.host=127.0.0.1", "taskmanager.numberOfTaskSlots=1",
                    f"execution.checkpointing.dir={work}/checkpoints", f"journal.dir={work}/journal",
                    "metrics.port=0"]
        processes = []

        def spawn(role, *extra):
            args = [arg for setting in (*settings, *extra) for arg in ("-D", setting)]
            log_file = open(os.path.join(work, f"{role}-{len(processes)}.log"), "w")
            process = subprocess.Popen([self.binary, role, *args], stdout=log_file, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, cwd=work)
            processes.append(process)
            return process

        def wait(condition, what, timeout=60):
            deadline = time.time() + timeout
            while time.time() < deadline:
                value = condition()
                if value:
                    return value
                time.sleep(0.01)
            raise RuntimeError(f"failover run {run}: {what} not within {timeout} s")

        def job_manager():
            port = free_port()
            return spawn("jobmanager", f"rest.port={port}", f"jobmanager.rpc.port={free_port()}"), port

        try:
            leader, leader_port = job_manager()
            wait(lambda: rest_at(leader_port, "/overview"), "the first JobManager to lead")
            standby, standby_port = job_manager()
            standby_log = os.path.join(work, "jobmanager-1.log")
            wait(lambda: "another JobManager leads" in open(standby_log).read(), "a standby")
            spawn("taskmanager")
            spawn("taskmanager")
            wait(lambda: (rest_at(leader_port, "/overview") or {}).get("taskmanagers") == 2, "two TaskManagers")
            path = job_file(work, "failover", None, rate=LONG_RATE, checkpoint_ms=1000)
            done = self.run("run", "-d", "-m", f"127.0.0.1:{leader_port}", path)
            jid = re.search(r"[0-9a-f]{32}", done.stdout).group(0)
            completed = lambda: (((rest_at(leader_port, f"/jobs/{jid}/checkpoints") or {}).get("counts") or {})
                                 .get("completed") or 0) >= 1
            wait(completed, "a completed checkpoint")
            killed = time.time()
            leader.kill()
            job = lambda: rest_at(standby_port, f"/jobs/{jid}") or {}
            wait(lambda: job().get("state") == "RUNNING", "the job RUNNING under the standby")
            job_running = time.time() - killed

            def all_tasks_running():
                total, counts = task_counts(job())
                return total and counts.get("RUNNING", 0) == total
            wait(all_tasks_running, "every task RUNNING under the standby")
            tasks_running = time.time() - killed
            return {"kill_to_job_running_s": round(job_running, 3), "kill_to_all_tasks_running_s": round(tasks_running, 3)}
        finally:
            for process in processes:
                process.kill()
                process.wait()

    # ------------------------------------------------------------------------------ in-process
    def schedule(self, tasks, runs=3):
        reports = [json.loads(self.run("bench", "schedule", "--tasks", tasks, "--json").stdout) for _ in range(runs)]
        reports.sort(key=lambda report: report["total_ms"])
        median = dict(reports[len(reports) // 2])
        median["runs_total_ms"] = [report["total_ms"] for report in reports]
        log("schedule", median)
        return median

    def state(self, keys, records, snapshots):
        report = json.loads(self.run("bench", "state", "--keys", keys, "--records", records,
                                     "--snapshots", snapshots, "--json").stdout)
        log("state", report)
        return report

    def simulator(self, scenario, seeds):
        """`weir sim explore` on one thread: simulated seconds per wall second, events/s, seeds/min."""
        done = self.run("sim", "explore", os.path.join(ROOT, "scenarios", scenario), "--seeds", seeds, "--jobs", 1)
        match = re.search(r"in ([0-9.]+) s: ([0-9.]+) seeds/s, ([0-9.]+) events/s, ([0-9.]+) simulated s per wall s; "
                          r"(\d+) failing", done.stdout)
        if not match:
            raise RuntimeError(f"weir sim explore printed no summary: {done.stdout[-600:]}")
        result = {"scenario": scenario, "seeds": seeds, "threads": 1, "wall_s": float(match.group(1)),
                  "seeds_per_min": round(float(match.group(2)) * 60), "events_per_s": round(float(match.group(3))),
                  "simulated_s_per_wall_s": round(float(match.group(4))), "failing": int(match.group(5))}
        log("sim", result)
        return result


def new_work_dir():
    return tempfile.mkdtemp(prefix="weir-bench-")


def remove_work_dir(work):
    shutil.rmtree(work, ignore_errors=True)
