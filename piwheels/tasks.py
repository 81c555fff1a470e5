"""The task runtime of the master: each task is a thread polling its queues and running periodic jobs.

A task's constructor only wires things up: it makes its sockets with
:meth:`Task.socket`, binds or connects them, registers each with a handler
(:meth:`Task.register`) and each periodic job with an interval
(:meth:`Task.every`). :meth:`Task.run` (the thread) then calls
:meth:`Task.once` and cycles through :meth:`Task.loop` and
:meth:`Task.poll` until it is told to quit. A task whose
:attr:`Task.own_process` is set runs in a process of its own instead,
behind a :class:`TaskProcess` that the master handles as it would the
thread.

Every task binds an internal control queue (an ``inproc://`` PULL socket
speaking :data:`piwheels.protocols.task_control`, or an extension of it).
Other threads never touch a task's sockets: they call the task's control
methods (:meth:`Task.pause`, :meth:`Task.resume`, :meth:`Task.quit`, and
those a task adds with :meth:`Task.send_control`), each of which sends one
message over a short-lived PUSH socket.

Pick a base class by what pausing means for the task:

* :class:`NonStopTask` ignores PAUSE and RESUME;
* :class:`PauseableTask` does nothing but wait for RESUME or QUIT while
  paused;
* :class:`PausingTask` keeps draining its queues while paused, handing each
  waiting message to :meth:`PausingTask.handle_paused`.
"""

import abc
import itertools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from datetime import timedelta

from . import protocols, transport
from .exc import MasterError, PiwheelsError, ProtocolError

_control_ids = itertools.count(1)


class TaskQuit(Exception):
    """Raised when the "QUIT" message arrives on the internal control queue;
    :meth:`Task.run` catches it and ends the task."""


class TaskControl(Exception):
    """Raised by :meth:`Task.handle_control` for a control message other than
    QUIT, PAUSE and RESUME, so that a task declaring more control actions
    can catch it in its own ``handle_control`` and act on it.

    :param str msg: the control message's action.
    :param data: its data (:data:`~piwheels.protocols.NoData` if none).
    """

    def __init__(self, msg, data=protocols.NoData):
        super().__init__(msg)
        self.msg = msg
        self.data = data


class Task(threading.Thread, metaclass=abc.ABCMeta):
    """A thread that polls its registered queues and runs periodic handlers.

    Use one of the descendants, which decide what pausing means:
    :class:`NonStopTask`, :class:`PauseableTask` or :class:`PausingTask`.

    **Errors in handlers.** Handlers are called by :meth:`poll`:

    * a :exc:`~piwheels.exc.ProtocolError` (a message that could not be
      decoded, an unknown action, data that fails its schema) is logged as
      one line with its text, counted in :attr:`protocol_errors`, and the
      task carries on with the next message (a handler whose peer waits
      for a reply -- a REP socket, or a ROUTER facing REQ peers -- catches
      the error itself and answers, or the peer and the socket are stuck);
    * any other :exc:`~piwheels.exc.PiwheelsError` (the error piwheels
      raises on purpose, e.g. a peer that has gone away) is logged as one
      line, counted in :attr:`handler_errors`, and the task carries on;
    * any other exception is a bug: :meth:`poll` lets it through, and
      :meth:`run` logs it at CRITICAL with its traceback, keeps it in
      :attr:`failure`, closes the task's sockets and ends the thread. The
      task does not carry on, because its state can no longer be trusted;
      the master watches its tasks (``not task.is_alive()`` or
      ``task.failure is not None``) and shuts down with an error when one
      has died.

    The thread is a daemon, so a task stuck in a handler cannot keep a
    dying master alive.

    :param config: the command's configuration namespace.
    :param protocols.Protocol control_protocol: the protocol of the internal
        control queue (default: :data:`piwheels.protocols.task_control`);
        tasks that take more control messages pass an extension of it.
    """

    #: whether the master runs this task in a process of its own (see
    #: :class:`TaskProcess`); its queues to other tasks must then not be
    #: ``inproc://`` addresses
    own_process = False

    #: how much lower than the master's the scheduling priority of that
    #: process is (see :func:`os.nice`)
    niceness = 0

    def __init__(self, config, control_protocol=protocols.task_control):
        super().__init__(name=type(self).__name__, daemon=True)
        self.config = config
        self.logger = logging.getLogger('piwheels.tasks.' + self.name)
        #: invalid messages received (and dropped) by handlers
        self.protocol_errors = 0
        #: handler calls that ended with another :exc:`PiwheelsError`
        self.handler_errors = 0
        #: the exception that stopped the task, or ``None``
        self.failure = None
        #: ``True`` while the task is paused (only pausing tasks pause)
        self.paused = False
        self.ctx = transport.Context.instance()
        self._sockets = []
        self._handlers = {}
        self._poller = transport.Poller()
        # handler -> [interval in seconds, monotonic time it is next due]
        self._periodic = {}
        self.control_protocol = control_protocol
        self.control_address = 'inproc://task-control-{}-{}'.format(
            self.name, next(_control_ids))
        self.control_queue = self.socket(
            transport.PULL, protocol=control_protocol)
        self.control_queue.bind(self.control_address)
        self.register(self.control_queue, self.handle_control)

    def socket(self, sock_type, protocol=None, **options):
        """Make a socket that logs to this task's logger and is closed by
        :meth:`close`.

        :param int sock_type: the socket type, e.g. :data:`transport.ROUTER`.
        :param protocols.Protocol protocol: the queue's protocol.
        :param options: passed to :meth:`transport.Context.socket`
            (``max_size``, ``linger``, ...).
        :rtype: transport.Socket
        """
        sock = self.ctx.socket(sock_type, protocol=protocol,
                               logger=self.logger, **options)
        self._sockets.append(sock)
        return sock

    def register(self, queue, handler, flags=transport.POLLIN):
        """Poll *queue* on each cycle and call ``handler(queue)`` when one of
        *flags* is ready. Call this from the constructor only.

        :param transport.Socket queue: the queue to poll.
        :param handler: called with *queue*; it receives one message.
        :param int flags: the events to wait for (default: POLLIN).
        """
        self._poller.register(queue, flags)
        self._handlers[queue] = (handler, flags)

    def every(self, interval, handler):
        """Call ``handler()`` on the first cycle of the task and then every
        *interval*. Call this from the constructor only.

        :param datetime.timedelta interval: the time between two calls.
        :param handler: the function or method to call.
        """
        if not isinstance(interval, timedelta) or interval <= timedelta(0):
            raise ValueError('interval must be a positive timedelta, not '
                             '{!r}'.format(interval))
        self._periodic[handler] = [interval.total_seconds(), 0.0]

    def force(self, handler):
        """Make periodic *handler* due now, so the next :meth:`poll` runs it
        (call this from within the task's thread, e.g. from a handler)."""
        try:
            self._periodic[handler][1] = 0.0
        except KeyError:
            raise ValueError('{!r} was not registered with every()'.format(
                handler)) from None

    def send_control(self, msg, data=protocols.NoData):
        """Send one message to this task's control queue from any thread,
        over a short-lived PUSH socket. Control methods (:meth:`quit`, and
        those a task adds) call this.

        :param str msg: an action of the task's control protocol.
        :param data: its data, if the action takes any.
        """
        send_control(self.control_address, self.control_protocol, msg, data,
                     self.logger)

    def pause(self):
        """Ask the task to pause; harmless to repeat, and ignored by tasks
        that don't pause."""
        self.send_control('PAUSE')

    def resume(self):
        """Ask a paused task to carry on; harmless to repeat."""
        self.send_control('RESUME')

    def quit(self):
        """Ask the task to end at its earliest convenience; call
        :meth:`join` afterwards to wait for it."""
        self.send_control('QUIT')

    def handle_control(self, queue):
        """Handle one message on the internal control queue.

        QUIT raises :exc:`TaskQuit`; PAUSE and RESUME call
        :meth:`set_paused`; any other action raises :exc:`TaskControl`,
        which a task that declares more control actions catches in its own
        ``handle_control`` (an action it declares but doesn't catch is a
        bug, and stops the task).
        """
        msg, data = queue.recv_msg()
        if msg == 'QUIT':
            raise TaskQuit()
        elif msg in ('PAUSE', 'RESUME'):
            self.set_paused(msg == 'PAUSE')
        else:
            raise TaskControl(msg, data)

    @abc.abstractmethod
    def set_paused(self, paused):
        """React to PAUSE (*paused* is ``True``) or RESUME (``False``)."""

    def once(self):
        """Called in the task's thread before the first cycle; override for
        set-up that must happen there."""

    def loop(self):
        """Called at the start of every cycle while the task isn't paused;
        override for work that must happen every cycle."""

    def poll(self, timeout=1):
        """Run one cycle: call the periodic handlers that are due, then wait
        up to *timeout* seconds (less when a periodic handler falls due
        sooner) for messages on the registered queues and call the handler
        of each queue that is ready.

        Errors raised by handlers are dealt with as the class documentation
        says; anything but a :exc:`~piwheels.exc.PiwheelsError` (and
        :exc:`TaskQuit`) propagates.

        :param float timeout: the most seconds to wait for a message
            (``None``: until one arrives or a periodic handler is due).
        """
        now = time.monotonic()
        for handler, timing in list(self._periodic.items()):
            interval, due = timing
            if due <= now:
                timing[1] = now + interval
                self._call(handler)
        self._dispatch(self._poller.poll(self._wait_time(timeout)))

    def _wait_time(self, timeout):
        if not self._periodic:
            return timeout
        next_due = min(due for interval, due in self._periodic.values())
        until_due = max(0.0, next_due - time.monotonic())
        return until_due if timeout is None else min(timeout, until_due)

    def _dispatch(self, ready):
        for queue, events in ready.items():
            if self.paused and queue is not self.control_queue:
                # a PAUSE handled earlier in this cycle
                return
            handler, flags = self._handlers[queue]
            if events & flags:
                self._call(handler, queue)

    def waiting(self, queue, limit, addressed=False):
        """Yield the messages waiting on *queue*, up to *limit*: ``(msg,
        data)``, or ``(address, msg, data)`` from a ROUTER when *addressed*.
        An invalid one is logged and counted as :meth:`poll` does, and
        skipped. For handlers that take every message waiting in one call.
        """
        recv = queue.recv_addr_msg if addressed else queue.recv_msg
        for _ in range(limit):
            try:
                yield recv(transport.NOBLOCK)
            except transport.Again:
                return
            except ProtocolError as exc:
                self._invalid_message(exc)

    def _invalid_message(self, exc):
        self.protocol_errors += 1
        self.logger.error('%s: invalid message ignored: %s', self.name, exc)

    def _call(self, handler, *args):
        try:
            handler(*args)
        except ProtocolError as exc:
            self._invalid_message(exc)
        except PiwheelsError as exc:
            self.handler_errors += 1
            self.logger.error('%s: %s failed: %s', self.name,
                              getattr(handler, '__name__', handler), exc)

    def run(self):
        """The task's thread: :meth:`once`, then :meth:`loop` and
        :meth:`poll` until QUIT; closes every socket on the way out."""
        self.logger.info('%s: starting', self.name)
        try:
            self.once()
            while True:
                if not self.paused:
                    self.loop()
                self.poll()
        except TaskQuit:
            self.logger.info('%s: stopped', self.name)
        except Exception as exc:
            self.failure = exc
            self.logger.critical('%s: stopped by an unexpected error',
                                 self.name, exc_info=True)
        finally:
            self.close()

    def close(self):
        """Close every socket made by :meth:`socket`; override to close
        anything else the task holds (call ``super()``)."""
        for sock in self._sockets:
            sock.close()
        self._sockets = []


class NonStopTask(Task):
    """A task that never pauses: PAUSE and RESUME are ignored (tasks other
    tasks depend on to answer them, such as the database RPC)."""

    def set_paused(self, paused):
        self.logger.debug('%s: cannot pause; %s ignored', self.name,
                          'PAUSE' if paused else 'RESUME')


class PauseableTask(Task):
    """A task that does nothing while paused: it waits on its control queue
    for RESUME or QUIT. Periodic handlers, :meth:`~Task.loop` and the other
    queues are left alone until then; messages queue up for later.

    Use :class:`PausingTask` for a task whose peers must not wait while it
    is paused.
    """

    def set_paused(self, paused):
        if paused != self.paused:
            self.logger.info('%s: %s', self.name,
                             'paused' if paused else 'resumed')
        self.paused = paused

    def poll(self, timeout=1):
        if not self.paused:
            super().poll(timeout)
        elif self.control_queue.poll(timeout):
            self._call(self.handle_control, self.control_queue)


class PausingTask(PauseableTask):
    """A task that keeps draining its queues while paused: each message that
    arrives on a registered queue is passed to :meth:`handle_paused`
    instead of the queue's handler, so senders never block on a full queue
    and requesters can be told the task is paused. Periodic handlers and
    :meth:`~Task.loop` wait for RESUME.
    """

    def poll(self, timeout=1):
        if not self.paused:
            super().poll(timeout)
            return
        for queue, events in self._poller.poll(timeout).items():
            if queue is self.control_queue:
                self._call(self.handle_control, queue)
            elif events & transport.POLLIN:
                self._call(self.handle_paused, queue)

    def handle_paused(self, queue):
        """Handle one message arriving on *queue* while paused. The default
        receives it and discards it (logged at DEBUG); override to answer
        it, which a queue whose peers wait for a reply (REP, ROUTER facing
        REQ) must do.

        :param transport.Socket queue: the registered queue that is ready.
        """
        frames = queue.recv_multipart()
        self.logger.debug('%s: paused; discarded a message of %d bytes',
                          self.name, sum(len(frame) for frame in frames))


def send_control(address, protocol, msg, data=protocols.NoData, logger=None):
    """Send one message of control *protocol* to the control queue at
    *address*, over a short-lived PUSH socket (so any thread may call it);
    closing it waits a moment for the message to leave."""
    queue = transport.Context.instance().socket(
        transport.PUSH, protocol=protocol.reversed(), logger=logger)
    try:
        queue.connect(address)
        queue.send_msg(msg, data)
    finally:
        queue.close()


class TaskProcess:
    """Runs a task in a process of its own, where it no longer takes turns on
    the master's interpreter with the tasks that answer slaves; to the
    master it looks like the task's thread (:attr:`name`, :meth:`start`,
    :meth:`pause`, :meth:`resume`, :meth:`quit`, :meth:`join`,
    :meth:`is_alive`, :attr:`failure`), but for :meth:`wait_started`, which
    the master calls once it has started them all, so that they start side
    by side.

    The process is started afresh (not forked: a forked ZeroMQ context is
    unusable), takes the task's name (as ``ps`` shows it), lowers its
    priority by the task's :attr:`Task.niceness`,
    builds the task from the same configuration, logs as the master does,
    and relays the control messages that arrive on an
    ``ipc://`` queue in *runtime_dir* to the task. It ends when the task
    ends, on QUIT, on SIGTERM, or when the master is gone; Ctrl+C is the
    master's to handle.

    :param task_class: the task (a :class:`Task` taking the standard
        control messages).
    :param config: the master's configuration.
    :param str runtime_dir: a private directory for the control queue.
    """

    #: how long :meth:`wait_started` waits for the task to be set up
    START_TIMEOUT = timedelta(minutes=1)

    def __init__(self, task_class, config, runtime_dir):
        self.name = task_class.__name__
        self.logger = logging.getLogger('piwheels.tasks.' + self.name)
        self.control_address = 'ipc://{}/{}-{}-control'.format(
            runtime_dir, self.name, next(_control_ids))
        context = multiprocessing.get_context('spawn')
        self._ready, child_end = context.Pipe(duplex=False)
        self._process = context.Process(
            target=run_task_process, name=self.name,
            args=(task_class, config, self.control_address, child_end))

    def start(self):
        """Start the process (:meth:`wait_started` waits for its task)."""
        self._process.start()

    def wait_started(self):
        """Wait until the task runs.

        :raises MasterError: if the task could not be set up (why, in one
            line).
        """
        timeout = self.START_TIMEOUT.total_seconds()
        if not self._ready.poll(timeout):
            self.kill()
            raise MasterError('{}: its process did not start within {:.0f} '
                              's'.format(self.name, timeout))
        try:
            problem = self._ready.recv()
        except EOFError:
            problem = 'its process ended while starting'
        finally:
            self._ready.close()
        if problem is not None:
            self._process.join(10)
            raise MasterError('{}: {}'.format(self.name, problem))

    @property
    def failure(self):
        """Why the process ended badly (``None`` while it runs, or if it
        ended cleanly)."""
        code = self._process.exitcode
        if not code:
            return None
        if code < 0:
            return RuntimeError('{} was killed by signal {}'.format(
                self.name, -code))
        return RuntimeError('{} exited with code {}'.format(self.name, code))

    @property
    def pid(self):
        """The process's id (``None`` before :meth:`start`)."""
        return self._process.pid

    def is_alive(self):
        return self._process.is_alive()

    def join(self, timeout=None):
        self._process.join(timeout)

    def kill(self):
        """End a process that would not stop."""
        self._process.kill()
        self._process.join(10)

    def pause(self):
        self._control('PAUSE')

    def resume(self):
        self._control('RESUME')

    def quit(self):
        self._control('QUIT')

    def _control(self, msg):
        if self.is_alive():
            send_control(self.control_address, protocols.task_control, msg,
                         logger=self.logger)


def run_task_process(task_class, config, control_address, ready):
    """The process of a :class:`TaskProcess`: set up and run the task,
    relaying the messages of *control_address* to it, and tell the parent
    over the pipe *ready* when it runs (``None``) or why it can't (a
    line). Exits with 1 if the task failed."""
    from .terminal import Command
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    terminated = threading.Event()
    signal.signal(signal.SIGTERM, lambda signo, frame: terminated.set())
    Command.configure_logging(config)
    with open('/proc/self/comm', 'w') as comm:
        comm.write(task_class.__name__[:15])
    os.nice(task_class.niceness)
    master = os.getppid()
    try:
        task = task_class(config)
        control = transport.Context.instance().socket(
            transport.PULL, protocol=protocols.task_control,
            logger=task.logger)
        control.bind(control_address)
    except Exception as exc:
        ready.send(str(exc).splitlines()[0] if str(exc) else repr(exc))
        sys.exit(1)
    task.start()
    ready.send(None)
    ready.close()
    try:
        while (task.is_alive() and not terminated.is_set()
               and os.getppid() == master):
            if control.poll(1):
                try:
                    msg, data = control.recv_msg()
                except ProtocolError as exc:
                    task.logger.error('%s: invalid control message ignored: '
                                      '%s', task.name, exc)
                else:
                    task.send_control(msg, data)
        if task.is_alive():
            task.quit()
        task.join()
    finally:
        control.close(linger=0)
    sys.exit(1 if task.failure is not None else 0)
