"""One owner per cell: a lease file, ``<cell>/lease.json``, that works on NFS as on local disk.

Why a lease file and not flock: flock on NFS is emulated with byte-range locks through lockd (v3)
or the protocol's own locks (v4), and a mount with ``nolock`` or ``local_lock=all`` (common on
clusters, and what several parallel filesystems do by default) keeps it local to one node, so two
nodes both "hold" it, silently. A lease file relies only on what every NFS version makes atomic:
``link(2)`` to create it (open(2)'s manual gives this recipe for lock files on NFS, including
the retransmitted-link check of the link count) and ``rename(2)`` to replace it. It also says who
the owner is (host, pid, SLURM job, log, sweep), which ``bpgrid.status`` reads.

The rule: a lease is held while its owner lives. An owner is alive when SLURM lists its job as
pending or running, when its pid runs on this machine (with the same start time), or else when
its heartbeat (rewritten every HEARTBEAT_SECONDS by a thread of the owner) is younger than
STALE_SECONDS. A lease whose owner is not alive is stale and is taken over: renamed aside, and
put back if it changed in between (its owner was alive after all). An owner checks its lease at
each heartbeat and each epoch: one that finds its lease gone or replaced stops (``LostLease``),
so even a wrong takeover, after a stall longer than STALE_SECONDS, costs at most one epoch.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bpgrid.checkpoint import atomic_write
from bpgrid.jobs import SLURM_LIVE, machine, me, process_alive, slurm_states

HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 300.0  # ten heartbeats: an NFS hiccup or a long GC pause is no death
RESERVED = "reserved"  # a sweep's lease on a cell for its queued SLURM task
BREAK_SECONDS = 60.0  # a breaker file older than this was left by a process that died
ACQUIRE_SECONDS = 60.0


class Owned(Exception):
    """Another live owner holds the cell; the message names the cell and the owner."""

    def __init__(self, path: Path, holder: dict) -> None:
        super().__init__(f"cell {path.parent.name} is owned by {describe(holder)}; not starting "
                         f"a second copy (lease: {path})")
        self.holder = holder


class LostLease(Exception):
    """This process's lease was taken over (it was thought dead); it must stop the cell."""


def describe(record: dict) -> str:
    """An owner in words: what it is, where, since when, and its log."""
    if record.get("unreadable"):
        return "an owner whose lease file cannot be read"
    what = (f"SLURM job {record['job_id']} (queued by the sweep on {record.get('host')})"
            if record.get("kind") == RESERVED and record.get("job_id")
            else f"pid {record.get('pid')} on {record.get('host')}"
            + (f", SLURM job {record['job_id']}" if record.get("job_id") else ""))
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("since", 0)))
    return f"{what} since {since} (log: {record.get('log')})"


def read(path: Path) -> dict | None:
    """The lease's record; None if there is none; ``{"unreadable": True, ...}`` if it is
    damaged (then its age is its file's)."""
    try:
        text = path.read_text()
        stamp = path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError:
        text, stamp = "", time.time()
    try:
        record = json.loads(text)
        if isinstance(record, dict) and "token" in record:
            return record
    except ValueError:
        pass
    return {"unreadable": True, "token": None, "heartbeat": stamp, "raw": text}


ASK = object()  # alive(): ask SLURM about this lease's job


def alive(record: dict, slurm: Mapping[str, str] | None | object = ASK) -> bool:
    """Whether the lease's owner may still be working on the cell (see the module's rule).
    ``slurm``: job states from one ``slurm_states`` call for many leases (None: SLURM could not
    be asked), or ASK to ask about this one."""
    here = record.get("machine") == machine() and bool(record.get("pid"))
    pid_alive = process_alive(record["pid"], record.get("started")) if here else None
    job, reserved = record.get("job_id"), record.get("kind") == RESERVED
    if job:
        states = slurm_states([job]) if slurm is ASK else slurm
        if states is not None:
            state = states.get(job)
            # a job that runs here while its pid is gone let go of the cell (a stopped
            # bpgrid.train in an allocation); one queued again after a requeue has not
            return state in SLURM_LIVE and (reserved or state != "RUNNING"
                                            or pid_alive is not False)
        if reserved:
            return True  # queued, and SLURM cannot be asked here: assume it still is
    elif reserved and not here:
        return True
    if pid_alive is not None:
        return pid_alive
    return time.time() - float(record.get("heartbeat", 0)) < STALE_SECONDS


@dataclass
class Lease:
    """A held lease: its file, token and record; renewed by the heartbeat thread."""

    path: Path
    token: str
    record: dict
    took_over: dict | None = None  # the stale owner's record, when this lease replaced one
    lost: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self) -> None:
        """Raise LostLease if another owner has taken the cell over."""
        if self.lost or (read(self.path) or {}).get("token") != self.token:
            self.lost = True
            raise LostLease(f"cell {self.path.parent.name}: the lease {self.path} was taken "
                            f"over; stopping this copy")

    def renew(self, **changes) -> None:
        """Rewrite the lease with a fresh heartbeat (and ``changes``), if it is still ours."""
        with self.lock:
            if self.lost or (read(self.path) or {}).get("token") != self.token:
                self.lost = True
                return
            self.record.update(changes, heartbeat=time.time())
            _write(self.path, self.record)

    def keep_for_job(self) -> None:
        """Leave the lease to this process's SLURM job, stopped but maybe queued again (a
        requeue): held while SLURM lists the job, whatever became of this process."""
        _HEARTBEAT.forget(self)
        self.renew(kind=RESERVED)
        self.lost = True

    def release(self) -> None:
        """Remove the lease if it is still ours; stop renewing it."""
        _HEARTBEAT.forget(self)
        with self.lock:
            if not self.lost and (read(self.path) or {}).get("token") == self.token:
                self.path.unlink(missing_ok=True)
            self.lost = True


def _write(path: Path, record: dict) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(record).encode()))


def _create(path: Path, record: dict) -> bool:
    """Create the file atomically (a link to a complete file); False if it exists."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    _write(tmp, record)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        # NFS: a retransmitted link whose first attempt succeeded answers EEXIST
        return tmp.stat().st_nlink == 2
    finally:
        tmp.unlink(missing_ok=True)


def _same(a: dict | None, b: dict) -> bool:
    return a is not None and (a.get("token"), a.get("heartbeat")) == (b.get("token"),
                                                                     b.get("heartbeat"))


def _break(path: Path, seen: dict) -> None:
    """Remove a stale lease, as one process: the one that creates its breaker file (named by
    the stale token) removes it, if it is still the lease that was judged stale; the others
    wait and look again. A breaker whose process died is removed after BREAK_SECONDS."""
    breaker = path.with_name(f".{path.name}.break-{seen.get('token')}")
    if not _create(breaker, me()):
        try:
            if time.time() - breaker.stat().st_mtime > BREAK_SECONDS:
                breaker.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        time.sleep(0.05)
        return
    try:
        if not _same(read(path), seen):
            return  # renewed, or already replaced by a new owner
        aside = path.with_name(f".{path.name}.stale-{secrets.token_hex(4)}")
        os.rename(path, aside)
        if not _same(read(aside), seen):  # renewed in the instant between: its owner lives
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
        aside.unlink(missing_ok=True)
    finally:
        breaker.unlink(missing_ok=True)


def acquire(path: Path, *, sweep_id: str = "", kind: str = "owner", token: str | None = None,
            heartbeat: bool = True) -> Lease:
    """Take the cell's lease, or raise Owned naming its live owner.

    ``token``: a lease that already carries it is this owner's own (a SLURM task taking over
    the reservation its sweep made for it, or the same task after a requeue), so it is taken
    over without asking whether its holder lives."""
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    record = {**me(), "token": token or secrets.token_hex(8), "kind": kind,
              "cell_id": path.parent.name, "sweep_id": sweep_id, "since": now, "heartbeat": now}
    took_over = None
    deadline = now + ACQUIRE_SECONDS
    while time.time() < deadline:
        if _create(path, record):
            lease = Lease(path, record["token"], record, took_over)
            if heartbeat:
                _HEARTBEAT.add(lease)
            return lease
        held = read(path)
        if held is None:
            continue  # released in between
        if held.get("token") != record["token"] and alive(held):
            raise Owned(path, held)
        if held.get("token") != record["token"]:  # not this owner's own reservation
            took_over = held
        _break(path, held)
    raise Owned(path, read(path) or {"unreadable": True})


class _Heartbeat:
    """One thread per process renews every lease the process holds."""

    def __init__(self) -> None:
        self.leases: dict[str, Lease] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, lease: Lease) -> None:
        with self.lock:
            self.leases[lease.token] = lease
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="bpgrid-lease",
                                               daemon=True)
                self.thread.start()

    def forget(self, lease: Lease) -> None:
        with self.lock:
            self.leases.pop(lease.token, None)

    def _run(self) -> None:
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            with self.lock:
                held = list(self.leases.values())
            for lease in held:
                try:
                    lease.renew()
                except OSError:  # a full or unreachable disk: the next beat tries again
                    pass


_HEARTBEAT = _Heartbeat()
