"""Several machines without a scheduler: torchrun on each host of `resources.hosts`, started over SSH
(or here, for `local`), joined by one c10d rendezvous on the first host.

The engine process that starts the run (the coordinator: `studio-engine run`, or the detached `_exec`)
holds the run's lock and is the pid in status.json; it starts one `studio-engine _node` per host, which
records itself in `nodes/<n>.json`, starts torchrun in a process group of its own and obeys one line
at a time on its stdin — the SSH channel: `cancel` (SIGINT to its workers: they agree to stop, save a
checkpoint and end as cancelled) and `kill` (SIGKILL to every process of the node). When the
channel closes (the coordinator died, or the connection broke), the node kills its processes too:
no node trains on alone. The coordinator writes `nodes.json` (each node's state) as nodes end; when
one stops while the others still train, rank 0's failure names it, and a run whose rank 0 died with
its node gets its `finished` event from the coordinator.

SSH, torchrun and c10d are the tools the field uses; what is ours is only this wiring between them.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.processes import children, descendants, process_start
from engine.rundir import RunDirectory, atomic_write_text

LOCAL = "local"
NODES_FILE = "nodes.json"
# The environment a node's command carries over SSH (which passes none): the engine's own settings, the
# libraries' offline/cache switches, and the network interfaces gloo/NCCL should use.
FORWARDED_PREFIXES = ("ATELIER_", "HF_", "TRANSFORMERS_", "NCCL_", "GLOO_", "TORCH_", "CUDA_VISIBLE_DEVICES",
                      "OMP_NUM_THREADS", "PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONIOENCODING", "DS_ACCELERATOR")
# How long rank 0, failing on a lost connection, waits for the coordinator to see which node stopped;
# and how long the coordinator lets the other nodes end on their own before it kills them.
VERDICT_WAIT_S = float(os.environ.get("ATELIER_NODE_VERDICT_S", "20"))
GRACE_S = float(os.environ.get("ATELIER_NODE_GRACE_S", "30"))


def multinode(spec) -> bool:
    resources = getattr(spec, "resources", None)
    return bool(getattr(resources, "hosts", None)) and getattr(resources, "nodes", 1) > 1


def ssh_command(host: str, ssh_config: str | None, remote: list[str]) -> list[str]:
    """`remote` run on `host` through the system ssh (BatchMode: a node must never wait for a password)."""
    config = ["-F", ssh_config] if ssh_config else []
    return ["ssh", *config, "-o", "BatchMode=yes", "-T", host, "--", shlex.join(remote)]


def host_address(host: str, ssh_config: str | None) -> str:
    """The address other nodes reach `host` at: the HostName its SSH alias stands for."""
    if host == LOCAL:
        return socket.gethostname()
    try:
        done = subprocess.run(["ssh", *(["-F", ssh_config] if ssh_config else []), "-G", host],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return host
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key == "hostname" and value:
            return value
    return host


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def node_commands(spec, workspace: Path, run_id: str, resume: bool, endpoint: str, rendezvous_id: str) -> list[list[str]]:
    """One command a node: `_node` wrapping torchrun with the c10d rendezvous at `endpoint` (hosted by
    the first node), over SSH unless the host is `local`."""
    r = spec.resources
    commands = []
    for node, host in enumerate(r.hosts):
        torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={r.nodes}", f"--node-rank={node}",
                    f"--nproc-per-node={r.gpus}", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}",
                    f"--rdzv-id={rendezvous_id}", f"--rdzv-conf=is_host={int(node == 0)}", "--max-restarts=0",
                    "-m", "engine.cli", "--workspace", str(workspace), "_exec", run_id] + (["--resume"] if resume else [])
        wrapper = [sys.executable, "-m", "engine.cli", "--workspace", str(workspace), "_node", "--node", str(node),
                   "--host", host, run_id, "--", *torchrun]
        if host == LOCAL:
            commands.append(wrapper)
        else:
            env = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith(FORWARDED_PREFIXES)]
            remote = ["env", *env, *wrapper] if env else wrapper
            commands.append(ssh_command(host, r.ssh_config, ["sh", "-c", f"cd {shlex.quote(os.getcwd())} && exec \"$@\"",
                                                             "node", *remote]))
    return commands


@dataclass
class NodeState:
    node: int
    host: str
    state: str = "starting"  # starting, running, ended
    exit_code: int | None = None
    ended: float | None = None


class NodeLaunch:
    """The coordinator's side of a multi-node run: the node processes, their control channels, and
    `nodes.json`. `poll()` is None while any node runs (what `attach --follow` waits on)."""

    def __init__(self, spec, run: RunDirectory, workspace: Path, resume: bool, env: dict[str, str], log_file):
        self.run = run
        r = spec.resources
        first = host_address(r.hosts[0], r.ssh_config)
        endpoint = f"{first}:{free_port()}"
        rendezvous = f"{run.run_id}-{os.getpid()}"  # a new rendezvous for each start of the run
        self.states = [NodeState(node, host) for node, host in enumerate(r.hosts)]
        self.commands = node_commands(spec, workspace, run.run_id, resume, endpoint, rendezvous)
        (run.path / "nodes").mkdir(exist_ok=True)
        for stale in (run.path / "nodes").glob("*.json"):
            stale.unlink()
        # Sessions of their own: `cancel --force` kills the coordinator's process group, and a node must
        # outlive it long enough to see its channel close and kill what it started (torchrun's workers
        # are in sessions of their own, out of any group kill's reach).
        self.processes = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log_file, stderr=log_file, env=env,
                                           start_new_session=True) for command in self.commands]
        for state in self.states:
            state.state = "running"
        self._write()
        self._lock = threading.Lock()
        self._first_loss: float | None = None
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def poll(self) -> int | None:
        codes = [p.poll() for p in self.processes]
        return None if any(c is None for c in codes) else max(codes, key=abs)

    def send(self, word: str) -> None:
        """`cancel` or `kill` to every node still running."""
        with self._lock:
            for process in self.processes:
                if process.poll() is None:
                    try:
                        process.stdin.write(f"{word}\n".encode())
                        process.stdin.flush()
                    except OSError:
                        pass

    def wait(self) -> None:
        for process in self.processes:
            process.wait()
        self._stop.set()
        self._watcher.join(timeout=5)
        self._update()

    def lost_node(self) -> NodeState | None:
        """The first node that ended with an error, if one did."""
        ended = [s for s in self.states if s.state == "ended" and s.exit_code]
        return min(ended, key=lambda s: s.ended) if ended else None

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            self._update()
            if self.lost_node() and self.poll() is None:
                # A node is gone: the others cannot finish without it. Rank 0 gets the time to say so.
                self._first_loss = self._first_loss or time.time()
                if time.time() - self._first_loss > GRACE_S:
                    self.send("kill")

    def _update(self) -> None:
        changed = False
        for state, process in zip(self.states, self.processes):
            code = process.poll()
            if code is not None and state.state != "ended":
                state.state, state.exit_code, state.ended, changed = "ended", code, time.time(), True
        if changed:
            self._write()

    def _write(self) -> None:
        atomic_write_text(self.run.path / NODES_FILE, json.dumps([asdict(s) for s in self.states], indent=1))


def read_nodes(run: RunDirectory) -> list[dict]:
    try:
        data = json.loads((run.path / NODES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    if code == 255:
        return "its SSH connection ended (exit 255)"
    if code > 128:
        return f"killed by signal {code - 128} (exit {code})"
    return f"exit code {code}"


def lost_node_message(node: dict, total: int, run: RunDirectory, step: int) -> tuple[str, str]:
    """What a run says when node `node` (a nodes.json entry) stopped under it: message and hint."""
    message = (f"Node {node['node']} of {total} (host {node['host']}) stopped at step {step} — "
               f"{describe_exit(node.get('exit_code'))} — and the run cannot go on without it.")
    checkpoints = run.checkpoints()
    since = f" from its last checkpoint ({checkpoints[-1].name})" if checkpoints else " (from step 0: no checkpoint yet)"
    hint = (f"Check that {node['host']} is up and reachable (its output is in {run.log_path}); "
            f"`studio-engine resume {run.run_id}` continues{since}.")
    return message, hint


def wait_for_lost_node(run: RunDirectory, timeout: float = VERDICT_WAIT_S) -> dict | None:
    """Rank 0, failing on a lost connection: the node the coordinator saw stop (None if none did in time)."""
    deadline = time.time() + timeout
    while True:
        ended = [n for n in read_nodes(run) if n.get("state") == "ended" and n.get("exit_code")]
        if ended:
            return min(ended, key=lambda n: n.get("ended") or 0)
        if time.time() > deadline:
            return None
        time.sleep(0.2)


def lost_connection(exc: BaseException) -> bool:
    """Whether `exc` is a collective failing because a peer went away (gloo, NCCL, the c10d store)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = f"{type(exc).__module__}.{type(exc).__name__}: {exc}".lower()
        if any(s in text for s in ("torch.distributed", "distbackenderror", "distnetworkerror", "gloo", "nccl",
                                    "connection closed by peer", "connection reset by peer", "broken pipe")):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# --- the node's side: `studio-engine _node` -------------------------------------------------------

def run_node(run: RunDirectory, node: int, host: str, command: list[str], control_file: Path | None = None) -> int:
    """Start `command` (torchrun) in its own process group, record this node, obey the control channel
    (stdin; or, under Slurm, `control_file` on the shared run folder), and return the command's exit code."""
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
    record = {"node": node, "host": host, "hostname": socket.gethostname(), "pid": os.getpid(),
              "pid_started": process_start(os.getpid()), "torchrun_pid": process.pid}
    atomic_write_text(run.path / "nodes" / f"{node}.json", json.dumps(record))

    def every_process() -> list[int]:
        # torchrun starts each worker in a session of its own: the group alone would miss them.
        return [process.pid, *descendants(process.pid)]

    def signal_all(signum: int, pids: list[int]) -> None:
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def listen() -> None:
        for line in sys.stdin:
            word = line.strip()
            if word == "cancel":
                signal_all(signal.SIGINT, children(process.pid))  # not torchrun itself: it would kill them after 30 s
            elif word == "kill":
                signal_all(signal.SIGKILL, every_process())
        signal_all(signal.SIGKILL, every_process())  # the channel closed: no node trains on alone

    def watch_file() -> None:
        obeyed = ""
        while process.poll() is None:
            try:
                word = control_file.read_text(encoding="utf-8").strip()
            except OSError:
                word = ""
            if word != obeyed and word in ("cancel", "kill"):
                obeyed = word
                if word == "cancel":
                    signal_all(signal.SIGINT, children(process.pid))
                else:
                    signal_all(signal.SIGKILL, every_process())
            time.sleep(0.5)

    # Ctrl-C on a terminal reaches the coordinator, which says `cancel`; here it is ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=listen if control_file is None else watch_file, daemon=True).start()
    return process.wait()
