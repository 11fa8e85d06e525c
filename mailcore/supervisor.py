"""Run mailcore as several worker processes serving the same listening sockets.

With MAILCORE_PROCESSES above one, `manage.py mailcore` becomes a small supervisor: it
binds every listener (listeners.bind), then forks the workers while it has no thread,
event loop or database connection. Each worker runs the usual server on the inherited
sockets, with its own event loop, database pool, traffic tally and change hub, and
whichever worker is free accepts the next connection. Shared sockets, rather than one
per worker bound with SO_REUSEPORT, keep a port asked as 0 one port for all, and a worker
that dies takes no connection waiting to be accepted with it.

The supervisor restarts a worker that dies (at once if it had been running a while,
else after a pause that doubles while it keeps dying young), passes SIGTERM and SIGINT
on for the workers' graceful drain, waits for them and exits. Each worker watches a
pipe whose writing end only the supervisor holds: killed outright, the supervisor leaves
the pipe closed, and the workers drain and exit rather than serve on unsupervised.
Log lines of a worker start with worker=N.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connections

from mailcore import siblings

log = logging.getLogger("mailcore")

RESTART_DELAYS = (1.0, 60.0)  # first and longest pause before restarting a worker that died young
SETTLED = 30.0  # seconds a worker must have run for its death to count as not young
STOP_MARGIN = 10.0  # seconds past the grace period before a worker still running is killed
_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}


@dataclass
class Worker:
    """A worker slot: what its process is given, and what the supervisor knows of it."""

    number: int  # from 1; a restarted worker keeps its number
    sockets: dict[str, socket.socket]  # the listening sockets, by listener name
    lifeline: int  # the reading end of the supervisor's pipe: at EOF the supervisor is gone
    pid: int = 0  # 0 while no process runs in this slot
    started: float = 0.0
    young_deaths: int = 0  # deaths in a row, each soon after starting
    due: float = 0.0  # when to start the slot's process again

    def watch_supervisor(self, loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
        """Call stop once the supervisor has gone (say, killed with SIGKILL)."""
        def gone() -> None:
            loop.remove_reader(self.lifeline)
            log.warning("mailcore supervisor gone: stopping")
            stop()

        loop.add_reader(self.lifeline, gone)


class Supervisor:
    """Fork the workers, restart the ones that die, and stop them all on SIGTERM or SIGINT."""

    def __init__(self, count: int, sockets: dict[str, socket.socket],
                 serve: Callable[[Worker], None], grace: float) -> None:
        self.sockets = sockets
        self.serve = serve  # runs in a worker process until it has stopped
        self.grace = grace
        self.lifeline, self.lifeline_end = os.pipe()
        self.wakeup, self.wakeup_end = os.pipe()
        os.set_blocking(self.wakeup, False)
        os.set_blocking(self.wakeup_end, False)
        self.notices = siblings.Pairs(count)
        self.workers = [Worker(n, sockets, self.lifeline) for n in range(1, count + 1)]
        self.stop_signal = 0
        self.stop_deadline: float | None = None
        self.killed = False

    def run(self) -> int:
        """Supervise until every worker has stopped; return the exit status."""
        if threading.active_count() > 1:  # a fork copies no other thread, whatever it holds
            raise RuntimeError("mailcore must fork its workers before starting any thread")
        signal.set_wakeup_fd(self.wakeup_end, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._asked_to_stop)
        signal.signal(signal.SIGINT, self._asked_to_stop)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the select below
        log.info("mailcore supervisor pid=%d starting %d workers", os.getpid(),
                 len(self.workers))
        # Objects made so far stay out of the collector's sight, so that collections in the
        # workers do not write to (and so copy) the pages they share with the supervisor.
        gc.freeze()
        try:
            for worker in self.workers:
                self._start(worker)
            while self._supervise():
                pass
        finally:
            self._close()
        log.info("mailcore supervisor stopped")
        return 1 if self.killed else 0

    def _supervise(self) -> bool:
        """Handle what happened since last time, and wait; return False once all is done."""
        self._reap()
        now = time.monotonic()
        if self.stop_signal and self.stop_deadline is None:
            self._stop_workers(now)
        running = [w for w in self.workers if w.pid]
        if self.stop_deadline is not None:
            if not running:
                return False
            if now >= self.stop_deadline and not self.killed:
                for worker in running:
                    log.warning("mailcore worker=%d pid=%d still running: killing it",
                                worker.number, worker.pid)
                    os.kill(worker.pid, signal.SIGKILL)
                self.killed = True
            wake_at = self.stop_deadline if not self.killed else now + 1
        else:
            for worker in self.workers:
                if not worker.pid and worker.due <= now:
                    self._start(worker)
            wake_at = min([w.due for w in self.workers if not w.pid] or [now + 5])
        select.select([self.wakeup], [], [], max(0.0, min(wake_at - now, 5.0)))
        try:
            while os.read(self.wakeup, 512):
                pass
        except BlockingIOError:
            pass
        return True

    def _asked_to_stop(self, signum: int, frame: object) -> None:
        self.stop_signal = self.stop_signal or signum

    def _stop_workers(self, now: float) -> None:
        log.info("mailcore supervisor got %s: stopping %d workers",
                 signal.Signals(self.stop_signal).name, sum(1 for w in self.workers if w.pid))
        self.stop_deadline = now + self.grace + STOP_MARGIN
        for worker in self.workers:
            if worker.pid:
                os.kill(worker.pid, signal.SIGTERM)
        # The listening sockets close once the workers have closed theirs: new connections
        # are refused from then on, as with one process.
        for sock in self.sockets.values():
            sock.close()

    def _start(self, worker: Worker) -> None:
        connections.close_all()  # a worker must not share the supervisor's connections
        # Signals wait until the worker has dropped the supervisor's handlers.
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        pid = os.fork()
        if pid == 0:
            self._become_worker(worker)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        worker.pid, worker.started = pid, time.monotonic()
        log.info("mailcore worker=%d started pid=%d", worker.number, pid)

    def _become_worker(self, worker: Worker) -> None:
        """Run the worker in the forked process, and end the process after it."""
        status = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in _SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            for fd in (self.wakeup, self.wakeup_end, self.lifeline_end):
                os.close(fd)
            self.notices.join(worker.number)
            _name_worker_in_logs(worker.number)
            self.serve(worker)
            status = 0
        except BaseException:
            log.exception("mailcore worker failed")
        finally:
            logging.shutdown()
            os._exit(status)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = next((w for w in self.workers if w.pid == pid), None)
            if worker is None:
                continue
            worker.pid = 0
            code = os.waitstatus_to_exitcode(status)
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"status {code}"
            if self.stop_deadline is not None:
                log.info("mailcore worker=%d pid=%d exited with %s", worker.number, pid, how)
                continue
            now = time.monotonic()
            if now - worker.started < SETTLED:
                worker.young_deaths += 1
                delay = min(RESTART_DELAYS[0] * 2 ** (worker.young_deaths - 1),
                            RESTART_DELAYS[1])
            else:
                worker.young_deaths, delay = 0, 0.0
            worker.due = now + delay
            log.warning("mailcore worker=%d pid=%d exited with %s after %.0fs; restarting "
                        "it in %.0fs", worker.number, pid, how, now - worker.started, delay)

    def _close(self) -> None:
        signal.set_wakeup_fd(-1)
        for sock in self.sockets.values():
            sock.close()
        self.notices.close()
        for fd in (self.wakeup, self.wakeup_end, self.lifeline, self.lifeline_end):
            os.close(fd)


def _name_worker_in_logs(number: int) -> None:
    """Start every log line of this process with worker=number."""
    make_record = logging.getLogRecordFactory()
    prefix = f"worker={number} "

    def record(*args, **kwargs) -> logging.LogRecord:
        made = make_record(*args, **kwargs)
        made.msg = prefix + str(made.msg)
        return made

    logging.setLogRecordFactory(record)
