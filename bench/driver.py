#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Runs Cordon's benchmarks against bare execution and the sandboxes people
use today (issues 3 and 8) and writes bench/results/report.md and its plots.

Timing is never done here: whole processes are timed by hyperfine, in-process
loops by Google Benchmark (bench/netfilter). This script sets the scene
(profiles, servers, a tinyproxy allowlist, live sessions), runs the
contenders of each scenario in alternating rounds, and turns the raw
results into medians, spread and ratios to bare. bench/run calls it.
"""

import argparse
import atexit
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent
NAME = f"cordon-bench-{os.getpid()}"  # our cgroup and BPF pin names


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **kw)


def out(cmd):
    try:
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (subprocess.SubprocessError, IndexError):
        return "unknown"


# ---- statistics over hyperfine's per-run times ----

def quantile(xs, q):
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(times):
    return {
        "n": len(times),
        "median": statistics.median(times),
        "p10": quantile(times, 0.10),
        "p25": quantile(times, 0.25),
        "p75": quantile(times, 0.75),
        "p90": quantile(times, 0.90),
        "times": times,
    }


# ---- the world: our own cgroup and pins, cleaned at exit ----

class World:
    def __init__(self, build, workdir):
        self.build = Path(build)
        self.work = Path(workdir)
        self.agent_run = self.build / "agent-run"
        self.cgroup = NAME
        self.pin_dir = f"/sys/fs/bpf/{NAME}"
        self.audit = self.work / "audit.log"
        self.children = []  # servers and live sessions we started: (Popen, name)
        # cordond's own: a config, profiles, socket, cgroup and pins of the bench's.
        self.daemon_dir = self.work / "cordond"
        self.daemon_cgroup = NAME + "-d"
        self.daemon_pin_dir = f"/sys/fs/bpf/{NAME}-d"
        self.socket = self.daemon_dir / "cordond.sock"
        self.daemon = None

    def start_cordond(self, profile):
        """cordond with the bench profile as "bench"; agent-run reaches it through --socket."""
        profiles = self.daemon_dir / "profiles.d"
        profiles.mkdir(parents=True)
        doc = json.loads(Path(profile).read_text())
        doc["credentials"]["orders_token"]["source"]["file"] = str(Path(profile).parent /
                                                                   "bench-token.txt")
        # As standalone agent-run under root: cordond would run the agent as its caller.
        doc.setdefault("session", {})["user"] = "cordon-agent"
        (profiles / "bench.json").write_text(json.dumps(doc))
        config = self.daemon_dir / "cordond.json"
        config.write_text(json.dumps({
            "socket": str(self.socket), "runDir": str(self.daemon_dir / "run"),
            "cgroup": self.daemon_cgroup, "bpfPinDir": self.daemon_pin_dir,
            "profilesDir": str(profiles), "auditLog": str(self.daemon_dir / "audit.log")}))
        self.daemon = self.start([str(self.build / "cordond"), "--config", str(config)],
                                 "cordond", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if self.socket.exists():
                return
            time.sleep(0.05)
        raise SystemExit("bench: cordond did not create its socket within 10 s")

    def cordond_prefix(self):
        return f"{self.agent_run} --socket {self.socket} --profile bench --"

    def agent_run_prefix(self, profile):
        return (f"{self.agent_run} --profile {profile} --cgroup {self.cgroup} "
                f"--bpf-pin-dir {self.pin_dir} --audit-log {self.audit} --")

    def start(self, argv, name, **kw):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        self.children.append((p, name))
        return p

    def stop(self, p):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.children = [(c, n) for (c, n) in self.children if c is not p]

    def clean(self):
        for p, _ in list(self.children):
            self.stop(p)
        # Detach the programs agent-run and cordond pinned for us, then remove our cgroup roots.
        for pins in (self.pin_dir, self.daemon_pin_dir):
            if os.path.isdir(pins):
                shutil.rmtree(pins, ignore_errors=True)
        mount = cgroup2_mount()
        for name in (self.cgroup, self.daemon_cgroup):
            remove_cgroup_tree(Path(mount) / name)
        shutil.rmtree(self.work, ignore_errors=True)


def remove_cgroup_tree(root):
    """Kills what is left in root's cgroups, deepest first, and removes them."""
    if not root.is_dir():
        return
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        try:
            (d / "cgroup.kill").write_text("1")
        except OSError:
            pass
        for _ in range(50):
            try:
                d.rmdir()
                break
            except OSError:
                time.sleep(0.1)
    try:
        root.rmdir()
    except OSError as e:
        log(f"cannot remove {root}: {e}")


def cgroup2_mount():
    for line in open("/proc/self/mountinfo"):
        left, _, right = line.partition(" - ")
        if right.split(" ")[0] == "cgroup2":
            return left.split(" ")[4]
    raise SystemExit("bench: no cgroup2 mount in /proc/self/mountinfo")


# ---- hyperfine in alternating rounds ----

HANGS = {}  # label: rounds killed because a run never ended


def kill_sessions(world):
    """SIGKILL whatever is left in our sessions' cgroups."""
    root = Path(cgroup2_mount()) / world.cgroup
    for d in root.glob("*") if root.is_dir() else []:
        try:
            (d / "cgroup.kill").write_text("1")
        except OSError:
            pass


def hyperfine_once(world, argv, timeout):
    """One hyperfine call; False when it outlived timeout and was killed."""
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        if p.wait(timeout=timeout) != 0:
            raise SystemExit(f"bench: hyperfine failed: {shlex.join(argv)}")
        return True
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        kill_sessions(world)
        return False


def hyperfine_rounds(world, label, commands, rounds, runs, warmup, per_run_s=2):
    """commands: {contender: shell command}. Each round runs every contender
    (in a rotated order) for `runs` runs; times of all rounds are merged.
    A round that hangs (a run that never ends) is killed, counted in HANGS
    and run again, at most 3 times."""
    names = list(commands)
    times = {n: [] for n in names}
    timeout = 30 + (runs + warmup) * len(names) * per_run_s
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        export = world.work / f"hf-{label}-{r}.json"
        argv = ["hyperfine", "--style", "none", "--runs", str(runs), "--warmup", str(warmup),
                "--export-json", str(export)]
        for n in order:
            argv += ["-n", n, commands[n]]
        for attempt in range(4):
            if hyperfine_once(world, argv, timeout):
                break
            HANGS[label] = HANGS.get(label, 0) + 1
            log(f"{label}: round {r} hung past {timeout} s; killed, running it again")
        else:
            raise SystemExit(f"bench: {label}: round {r} hung 4 times")
        for res in json.loads(export.read_text())["results"]:
            if any(code != 0 for code in res.get("exit_codes", [])):
                raise SystemExit(f"bench: {label}: {res['command']} exited non-zero")
            times[res["command"]] += res["times"]
    log(f"{label}: " + ", ".join(f"{n} {statistics.median(t) * 1e3:.2f} ms"
                                 for n, t in times.items()))
    return {n: summary(t) for n, t in times.items()}


def sandboxes(world, profile, bwrap_bpf, writable=None, daemon=False):
    """The whole-process contenders: {name: (prefix, suffix)} around a command;
    with daemon, agent-run through cordond too."""
    bind = f"--bind {writable} {writable} " if writable else ""
    return {
        "bare": ("", ""),
        "agent-run": (world.agent_run_prefix(profile) + " ", ""),
        **({"cordond": (world.cordond_prefix() + " ", "")} if daemon else {}),
        "bwrap": ("bwrap --unshare-user --unshare-pid --unshare-net --die-with-parent "
                  "--ro-bind / / --dev /dev --proc /proc " + bind + "--seccomp 3 ",
                  f" 3<{bwrap_bpf}"),
        "firejail": ("firejail --quiet ", ""),
    }


def wrap(contenders, cmd):
    return {n: pre + cmd + post for n, (pre, post) in contenders.items()}


# ---- scenarios ----

def scenario_launch(world, cfg, contenders):
    res = {}
    for label, cmd in [("/bin/true", "/bin/true"), ("python3 -c pass", "/usr/bin/python3 -c pass")]:
        res[label] = hyperfine_rounds(world, "launch-" + label.split()[0].strip("/").replace("/", "-"),
                                      wrap(contenders, cmd), cfg.rounds, cfg.launch_runs, 3)
    return res


def make_tree(world, files):
    """A tarball of `files` small files (1 to 8 KiB), in 100-file folders."""
    tar = world.work / "tree.tar"
    src = world.work / "tree-src"
    src.mkdir()
    rnd = open("/dev/urandom", "rb")
    for i in range(files):
        d = src / f"d{i // 100:03d}"
        d.mkdir(exist_ok=True)
        (d / f"f{i:05d}.txt").write_bytes(rnd.read(1024 * (1 + i % 8)))
    with tarfile.open(tar, "w") as t:
        t.add(src, arcname="tree")
    shutil.rmtree(src)
    return tar


def scenario_syscalls(world, cfg, profile, bwrap_bpf):
    loop = world.build / "bench" / "getppid_loop"
    scratch = world.work / "scratch"
    scratch.mkdir()
    shutil.chown(scratch, "cordon-agent", "cordon-agent")  # agent-run's agent runs as it
    tar = make_tree(world, cfg.files)
    os.chmod(tar, 0o644)
    contenders = sandboxes(world, profile, bwrap_bpf, writable=scratch)
    res = {}
    res["getppid loop"] = hyperfine_rounds(world, "getppid", wrap(contenders, f"{loop} {cfg.getppid}"),
                                           cfg.rounds, cfg.loop_runs, 1, per_run_s=10)
    # Each contender its own folder: the agent runs as cordon-agent, the others as root.
    work = {}
    for n, (pre, post) in contenders.items():
        d = scratch / n
        d.mkdir()
        if n == "agent-run":
            shutil.chown(d, "cordon-agent", "cordon-agent")
        work[n] = (pre + f"sh -c 'rm -rf {d}/t && mkdir {d}/t && tar -xf {tar} -C {d}/t && "
                   f"find {d}/t -type f -exec sha256sum {{}} + >/dev/null'" + post)
    res["extract and sha256 files"] = hyperfine_rounds(world, "files", work,
                                                       cfg.rounds, cfg.loop_runs, 1, per_run_s=10)
    return res


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench: nothing listens on 127.0.0.1:{port}")


def network_profile(world, port):
    p = json.loads((SOURCE / "bench/profiles/bench-agent.json").read_text())
    p["tools"]["lookup_order"]["endpoints"] = [f"127.0.0.1:{port}"]
    p["tools"]["lookup_order"]["description"] = "The benchmark's HTTP server on loopback."
    p["credentials"]["orders_token"]["source"] = {"file": str(SOURCE / "bench/profiles/bench-token.txt")}
    path = world.work / "net-agent.json"
    path.write_text(json.dumps(p))
    return path


def start_tinyproxy(world, port):
    filt = world.work / "tinyproxy.filter"
    filt.write_text("^127\\.0\\.0\\.1$\n")
    conf = world.work / "tinyproxy.conf"
    conf.write_text("\n".join([
        "User nobody", "Group nogroup", f"Port {port}", "Listen 127.0.0.1", "Timeout 60",
        "MaxClients 100", "LogLevel Critical", "Allow 127.0.0.1", "DisableViaHeader Yes",
        f'Filter "{filt}"', "FilterDefaultDeny Yes", "FilterURLs No", "FilterExtended Yes",
        "ConnectPort 443", ""]))
    os.chmod(world.work, 0o755)
    world.start(["tinyproxy", "-d", "-c", str(conf)], "tinyproxy",
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)


def scenario_network(world, cfg):
    """curl through an allowed path: bare, in a Cordon session, through
    tinyproxy with a one-host allowlist. connect: one curl process making
    `connects` requests on as many connections; bulk: one download."""
    www = world.work / "www"
    www.mkdir()
    (www / "small").write_bytes(b"ok\n")
    with open(www / "big", "wb") as f:
        f.truncate(cfg.bulk_mib << 20)
    os.chmod(www, 0o755)
    port, proxy = free_port(), free_port()
    world.start([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "-d", str(www),
                 str(port)], "http.server", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    start_tinyproxy(world, proxy)
    profile = network_profile(world, port)
    urls = " ".join([f"http://127.0.0.1:{port}/small"] * cfg.connects)
    curl = "curl -sSf -o /dev/null -H 'Connection: close'"
    routes = {
        "bare": "",
        "agent-run": world.agent_run_prefix(profile) + " ",
        "tinyproxy": "",
    }

    def cmds(what):
        c = {}
        for n, pre in routes.items():
            px = f" -x http://127.0.0.1:{proxy}" if n == "tinyproxy" else ""
            c[n] = pre + curl + px + " " + what
        return c

    # A refused host must really be refused by the proxy, or it is no allowlist.
    r = subprocess.run(f"curl -s -o /dev/null -w '%{{http_code}}' -x http://127.0.0.1:{proxy} "
                       f"http://127.0.0.2:{port}/small", shell=True, capture_output=True, text=True)
    if r.stdout.strip() != "403":
        raise SystemExit(f"bench: tinyproxy's filter did not refuse 127.0.0.2 (HTTP {r.stdout})")
    res = {}
    res[f"{cfg.connects} connections (curl)"] = hyperfine_rounds(
        world, "net-connect", cmds(urls), cfg.rounds, cfg.net_runs, 1, per_run_s=10)
    res[f"{cfg.bulk_mib} MiB download (curl)"] = hyperfine_rounds(
        world, "net-bulk", cmds(f"http://127.0.0.1:{port}/big"), cfg.rounds, cfg.net_runs, 1, per_run_s=10)
    return res


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def scenario_scale(world, cfg, profile):
    """Launch latency of one more session, and agent-run's resident memory,
    with 1 to N sessions live (each an agent-run whose agent sleeps)."""
    res = {"launch": {}, "rss_kib": {}, "levels": []}
    live = []
    for level in cfg.scale_levels:
        while len(live) < level - 1:
            p = world.start(shlex.split(world.agent_run_prefix(profile)) + ["sleep", "3600"],
                            "session", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            live.append(p)
        time.sleep(1)
        dead = [p for p in live if p.poll() is not None]
        if dead:
            raise SystemExit(f"bench: {len(dead)} live sessions exited (status {dead[0].returncode})")
        rss = sorted(rss_kib(p.pid) for p in live) if live else []
        out_ = hyperfine_rounds(world, f"scale-{level}",
                                {f"sessions:{level}": world.agent_run_prefix(profile) + " /bin/true"},
                                1, cfg.scale_runs, 2)
        res["launch"][level] = out_[f"sessions:{level}"]
        res["rss_kib"][level] = statistics.median(rss) if rss else None
        res["levels"].append(level)
    for p in live:
        world.stop(p)
    return res


def run_netfilter(world, cfg):
    exe = world.build / "bench" / "netfilter_bench"
    prefix = world.work / "nf"
    sh([str(exe), f"--benchmark_min_time={cfg.gb_min_time}",
        f"--benchmark_repetitions={cfg.gb_reps}", "--benchmark_enable_random_interleaving=true",
        "--benchmark_report_aggregates_only=false", f"--out-prefix={prefix}"],
       stdout=subprocess.DEVNULL)
    res = {}
    for path in sorted(world.work.glob("nf.sessions-*.json")):
        sessions = int(path.name.split("-")[1].split(".")[0])
        data = json.loads(path.read_text())
        for b in data["benchmarks"]:
            if b.get("run_type") != "iteration":
                continue
            bench, contender, _ = b["run_name"].split("/", 2)
            key = (bench, sessions)
            if bench == "bulk_tcp":
                value = b["bytes_per_second"] / 2**30  # GiB/s
            else:
                value = b["real_time"]  # microseconds
            res.setdefault(key, {}).setdefault(contender, []).append(value)
    return {k: {c: summary(v) for c, v in d.items()} for k, d in res.items()}


def run_seccomp(world, cfg):
    """The seccomp filter in process: getppid loop and file walk, no filter,
    allow-all and agent-default, each in forked children (bench/seccomp)."""
    exe = world.build / "bench" / "seccomp_bench"
    out = world.work / "seccomp.json"
    sh([str(exe), f"--benchmark_min_time={cfg.gb_min_time}",
        f"--benchmark_repetitions={cfg.gb_reps}", "--benchmark_enable_random_interleaving=true",
        "--benchmark_report_aggregates_only=false", f"--files={cfg.files}",
        f"--benchmark_out={out}", "--benchmark_out_format=json"], stdout=subprocess.DEVNULL)
    res = {}
    for b in json.loads(out.read_text())["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        work, variant = b["run_name"].split("/")[:2]
        res.setdefault(work, {}).setdefault(variant, []).append(b["real_time"])  # ms
    return {w: {v: summary(t) for v, t in d.items()} for w, d in res.items()}


def report_seccomp(sc, cfg):
    lines = ["## Seccomp filter, in process (Google Benchmark, issue 4)", "",
             "Each iteration forks a child that installs the variant's filter and times the "
             "work itself: 1,000,000 `getppid` calls, or `openat`+`fstat`+`read`+`close` over "
             f"{cfg.files} small files. `allow-all` is a filter that allows everything: the cost "
             "of entering seccomp at all. Median of the repetitions.", "",
             "| workload | filter | median ms | IQR | ratio to none |", "|---|---|---|---|---|"]
    for work, d in sorted(sc.items()):
        bare = d["none"]["median"]
        for v in ("none", "allow-all", "agent-default"):
            if v in d:
                s = d[v]
                lines.append(f"| {work} | {v} | {s['median']:.2f} | {s['p25']:.2f}-{s['p75']:.2f} "
                             f"| {s['median'] / bare:.3f} |")
    return lines + [""]


# ---- the report ----

def machine():
    cpu = out("lscpu | sed -n 's/^Model name: *//p'")
    return {
        "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
        "os": out(". /etc/os-release && echo $PRETTY_NAME"),
        "memory": out("free -h | awk '/^Mem/{print $2}'"),
        "cgroup2": cgroup2_mount(),
        "filesystem of the scratch folders": out(f"stat -f -c %T {SOURCE}"),
        "load average at start": out("cut -d' ' -f1-3 /proc/loadavg"),
    }


def versions(world):
    return {
        "cordon": out(f"git -C {SOURCE} describe --always --dirty"),
        "hyperfine": out("hyperfine --version"),
        "Google Benchmark": out("dpkg-query -W -f='${Version}' libbenchmark-dev"),
        "bubblewrap": out("bwrap --version"),
        "firejail": out("firejail --version"),
        "tinyproxy": out("tinyproxy -v"),
        "curl": out("curl --version"),
        "python3": out(f"{sys.executable} --version"),
        "matplotlib": out(f"{sys.executable} -c 'import matplotlib; print(matplotlib.__version__)'"),
    }


def ms(s):
    return f"{s * 1e3:.2f}"


def table_times(title, res, note=""):
    lines = [f"### {title}", ""]
    if note:
        lines += [note, ""]
    lines += ["| contender | median ms | p90 ms | IQR ms (p25-p75) | runs | ratio to bare | added ms |",
              "|---|---|---|---|---|---|---|"]
    bare = res["bare"]["median"]
    for n, s in res.items():
        lines.append(f"| {n} | {ms(s['median'])} | {ms(s['p90'])} | {ms(s['p25'])}-{ms(s['p75'])} "
                     f"| {s['n']} | {s['median'] / bare:.3f} | {ms(s['median'] - bare)} |")
    return lines + [""]


def plot_times(path, title, res, unit="ms"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = list(res)
    data = [[t * 1e3 for t in res[n]["times"]] for n in names]
    ax.boxplot(data, vert=False, labels=names, showfliers=False)
    ax.set_xlabel(unit)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_netfilter(path, nf):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [2, 1]})
    for ax, bench, label in [(axes[0], "connect_close", "connect()+close(), ratio to bare (lower is better)"),
                             (axes[1], "bulk_tcp", "bulk TCP throughput, ratio to bare (higher is better)")]:
        xs, ticks = [], []
        for (b, sessions), d in sorted(nf.items()):
            if b != bench:
                continue
            bare = d["bare"]["median"]
            for c in sorted((c for c in d if c != "bare"), key=lambda c: int(c.split(":")[1])):
                xs.append(d[c]["median"] / bare)
                kind = "rules" if c.startswith("rules:") else "gated rule"
                ticks.append(f"{c.split(':')[1]} {kind}\n{sessions} sess.")
        ax.bar(range(len(xs)), xs, color="#4c72b0")
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_xticks(range(len(xs)), ticks, fontsize=7)
        ax.set_title(label, fontsize=9)
        ax.set_ylim(0, max(xs + [1.0]) * 1.2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scale(path, scale):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    levels = scale["levels"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(levels, [scale["launch"][l]["median"] * 1e3 for l in levels], "o-", label="launch median ms")
    ax.set_xscale("log")
    ax.set_xlabel("live sessions")
    ax.set_ylabel("ms")
    ax2 = ax.twinx()
    rss = [(scale["rss_kib"][l] or 0) / 1024 for l in levels]
    ax2.plot(levels, rss, "s--", color="#dd8452", label="agent-run RSS MiB")
    ax2.set_ylabel("MiB")
    fig.legend(loc="upper left", fontsize=8)
    ax.set_title("agent-run launch of /bin/true and memory as sessions grow")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report_netfilter(nf, cfg):
    lines = ["## Netfilter, in process (Google Benchmark, issue 3)", "",
             "The benchmark process itself moves into a session cgroup (`cgroup.procs`) and back; "
             "`bare` is the same process outside Cordon's subtree, measured in the same pass. "
             f"{cfg.gb_reps} repetitions per benchmark, interleaved at random; "
             "median and IQR of the repetitions. The first phase has only the measured "
             "sessions live (1, 100, 1,000 and 10,000 rules, and `gated:1`, one rule behind an "
             "open approval gate); the second adds one-rule sessions up to 1,000 live sessions "
             "first.", "",
             "| benchmark | live sessions | contender | median | IQR | ratio to bare |",
             "|---|---|---|---|---|---|"]
    for (bench, sessions), d in sorted(nf.items()):
        unit = "GiB/s" if bench == "bulk_tcp" else "µs"
        bare = d["bare"]["median"]
        for c in sorted(d, key=lambda c: 0 if c == "bare" else int(c.split(":")[1])):
            s = d[c]
            lines.append(f"| {bench} | {sessions} | {c} | {s['median']:.2f} {unit} | "
                         f"{s['p25']:.2f}-{s['p75']:.2f} | {s['median'] / bare:.3f} |")
    lines += ["", "connect_close: one allowed `socket()`, `connect()` to 127.0.0.1 and `close()` "
              "(linger 0), in µs per pair. bulk_tcp: 256 MiB through one allowed connection, "
              "acknowledged by the server, in GiB/s; every packet passes the egress program.", "",
              "![netfilter](netfilter.png)", ""]
    return lines


def write_report(path, meta, results, cfg):
    L = ["# Cordon benchmark report", "",
         f"Run {meta['date']} with `bench/run{' --quick' if cfg.quick else ''}`, "
         f"{meta['duration_s']:.0f} s in all.", "",
         "## Machine", ""]
    for k, v in meta["machine"].items():
        L.append(f"- {k}: {v}")
    L += ["", "## Versions", ""]
    for k, v in meta["versions"].items():
        L.append(f"- {k}: {v}")
    L += ["", "Contenders of the whole-process scenarios (hyperfine, rounds alternate the "
          f"contenders, {cfg.rounds} rounds per scenario):", "",
          "- `bare`: the command itself.",
          "- `agent-run`: `build/agent-run` standalone, with `bench/profiles/bench-agent.json` "
          "(4 tools, a file credential, the `agent-default` seccomp baseline), its own cgroup "
          "and BPF pin names.",
          "- `cordond` (launch only): `agent-run` as a client of a `cordond` the bench started "
          "with the same profile (as `cordon-agent`), its own socket, cgroup and pins.",
          "- `bwrap`: new user, pid and net namespaces, `/` read-only, fresh `/dev` and "
          "`/proc`, and a seccomp filter of 47 denied system calls (`bench/programs/seccomp_export.c`).",
          "- `firejail`: its default profile, `--quiet`.",
          "- `tinyproxy` (network only): an HTTP proxy allowing one host (`FilterDefaultDeny`), "
          "the way proxy-based sandboxes allowlist egress.", ""]
    if "netfilter" in results:
        L += report_netfilter(results["netfilter"], cfg)
    if "launch" in results:
        L += ["## Launch (hyperfine)", "",
              "hyperfine starts each command through a shell and subtracts the shell's own "
              "start-up; bare `/bin/true` is below the 5 ms it can calibrate precisely, so "
              "its ratios are rough, and the added milliseconds are the figure to read.", ""]
        for label, res in results["launch"].items():
            L += table_times(f"`{label}`", res)
        L += ["![launch /bin/true](launch-true.png)", "", "![launch python3](launch-python3.png)", ""]
    if "syscalls" in results:
        L += ["## System calls (hyperfine)", ""]
        for label, res in results["syscalls"].items():
            note = ""
            if label == "getppid loop":
                note = (f"`getppid_loop {cfg.getppid}`: one process making {cfg.getppid:,} "
                        "getppid calls; its time includes the launch.")
                if "launch" in results:
                    tl = results["launch"]["/bin/true"]
                    per = {n: (res[n]["median"] - tl[n]["median"]) / cfg.getppid * 1e9 for n in res}
                    note += (" Less each contender's `/bin/true` launch median, per call: " +
                             ", ".join(f"{n} {v:.0f} ns ({v / per['bare']:.3f} of bare)"
                                       for n, v in per.items()) + ".")
            else:
                note = (f"`tar -x` of {cfg.files:,} files of 1 to 8 KiB, then `sha256sum` of each, "
                        "in a writable scratch folder.")
            L += table_times(label, res, note)
        L += ["![syscalls](syscalls.png)", ""]
    if "network" in results:
        L += ["## Network vs a proxy allowlist (hyperfine)", "",
              "A Python `http.server` on 127.0.0.1; `curl` in a Cordon session allowed that "
              "endpoint, or through tinyproxy allowing that host. Times include each "
              "contender's launch (agent-run's session setup; tinyproxy runs already).", ""]
        for label, res in results["network"].items():
            L += table_times(label, res)
        L += ["![network](network.png)", ""]
    if "scale" in results:
        sc = results["scale"]
        L += ["## Scale (hyperfine)", "",
              "Launch of `agent-run ... /bin/true` while N-1 other sessions live (each an "
              "agent-run whose agent sleeps), and the median resident memory of those agent-run "
              "processes. Connect latency against rules per session is in the netfilter table "
              "(1 and 10,000 rules).", "",
              "| live sessions | launch median ms | p90 ms | ratio to 1 session | agent-run RSS KiB (median) |",
              "|---|---|---|---|---|"]
        first = sc["launch"][sc["levels"][0]]["median"]
        for l in sc["levels"]:
            s = sc["launch"][l]
            rss = sc["rss_kib"][l]
            L.append(f"| {l} | {ms(s['median'])} | {ms(s['p90'])} | {s['median'] / first:.3f} | "
                     f"{'' if rss is None else int(rss)} |")
        L += ["", "![scale](scale.png)", ""]
    if HANGS:
        L += ["## Hangs", "",
              "Rounds killed and run again because a run never ended (an `agent-run` whose "
              "child blocked before exec): " +
              ", ".join(f"{k}: {v}" for k, v in HANGS.items()) + ". Their times are not in the "
              "figures above.", ""]
    if "seccomp" in results:
        L += report_seccomp(results["seccomp"], cfg)
    Path(path).write_text("\n".join(L))


def make_plots(outdir, results):
    if "netfilter" in results:
        plot_netfilter(outdir / "netfilter.png", results["netfilter"])
    if "launch" in results:
        plot_times(outdir / "launch-true.png", "launch of /bin/true", results["launch"]["/bin/true"])
        plot_times(outdir / "launch-python3.png", "launch of python3 -c pass",
                   results["launch"]["python3 -c pass"])
    if "syscalls" in results:
        plot_times(outdir / "syscalls.png", "getppid loop", results["syscalls"]["getppid loop"])
    if "network" in results:
        k = next(iter(results["network"]))
        plot_times(outdir / "network.png", k, results["network"][k])
    if "scale" in results:
        plot_scale(outdir / "scale.png", results["scale"])


# ---- main ----

class Config:
    def __init__(self, quick):
        self.quick = quick
        self.rounds = 3 if quick else 6
        self.launch_runs = 10 if quick else 30
        self.loop_runs = 2 if quick else 4
        self.net_runs = 2 if quick else 5
        self.scale_runs = 10 if quick else 20
        self.getppid = 2_000_000 if quick else 5_000_000
        self.files = 1000 if quick else 3000
        self.connects = 50 if quick else 200
        self.bulk_mib = 256
        self.gb_min_time = 0.1 if quick else 0.5
        self.gb_reps = 3 if quick else 10
        self.scale_levels = [1, 10, 100] if quick else [1, 10, 100, 1000]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True, help="a build made with -DCORDON_BENCH=ON")
    ap.add_argument("--out", default=str(SOURCE / "bench" / "results"))
    ap.add_argument("--quick", action="store_true", help="fewer runs, for a short check")
    ap.add_argument("--only", default="netfilter,seccomp,launch,syscalls,network,scale",
                    help="comma-separated scenarios")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (agent-run standalone, BPF, cgroups)")
    cfg = Config(args.quick)
    only = set(args.only.split(","))
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    # Under the build folder: firejail's default profile hides /tmp's and /var/tmp's contents.
    world = World(args.build, tempfile.mkdtemp(prefix=NAME + "-", dir=args.build))
    atexit.register(world.clean)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.chmod(world.work, 0o755)
    started = time.time()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
            "versions": versions(world)}
    profile = SOURCE / "bench" / "profiles" / "bench-agent.json"
    # agent-run refuses a credential file that is not root's and 0600; git keeps no mode.
    token = SOURCE / "bench" / "profiles" / "bench-token.txt"
    os.chown(token, 0, 0)
    os.chmod(token, 0o600)
    bwrap_bpf = world.work / "bwrap-seccomp.bpf"
    with open(bwrap_bpf, "wb") as f:
        sh([str(world.build / "bench" / "seccomp_export")], stdout=f)

    results = {}
    if "netfilter" in only:
        log("netfilter (Google Benchmark)")
        results["netfilter"] = run_netfilter(world, cfg)
    if "seccomp" in only:
        log("seccomp (Google Benchmark)")
        results["seccomp"] = run_seccomp(world, cfg)
    contenders = sandboxes(world, profile, bwrap_bpf)
    if "launch" in only:
        world.start_cordond(profile)
        results["launch"] = scenario_launch(world, cfg,
                                            sandboxes(world, profile, bwrap_bpf, daemon=True))
    if "syscalls" in only:
        results["syscalls"] = scenario_syscalls(world, cfg, profile, bwrap_bpf)
    if "network" in only:
        results["network"] = scenario_network(world, cfg)
    if "scale" in only:
        results["scale"] = scenario_scale(world, cfg, profile)

    meta["duration_s"] = time.time() - started
    make_plots(outdir, results)
    write_report(outdir / "report.md", meta, results, cfg)
    raw = {"meta": meta, "results": {k: {str(kk): vv for kk, vv in v.items()} for k, v in results.items()}}
    (outdir / "results.json").write_text(json.dumps(raw, indent=1, default=str))
    log(f"report: {outdir / 'report.md'}")


if __name__ == "__main__":
    main()
