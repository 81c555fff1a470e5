"""BigBrother: gathers the farm's statistics for the home page and the monitors.

Other tasks push what only they know (SlaveDriver the queue sizes and what
the slaves do, FileJuggler the output's disk space, CloudGazer when it last
read PyPI); BigBrother adds the database's build and download figures and
the master machine's memory, load and temperature, and every minute (ten
seconds in development mode) sends the resulting
:class:`~piwheels.protocols.MasterStats` to the monitors (STATS) and to the
web output (HOME); every ten minutes it also sends the search index.
"""

import os
from datetime import timedelta

from .. import protocols, transport
from ..exc import DatabaseError, TransportError
from ..protocols import MasterStats
from ..states import utcnow
from ..tasks import PauseableTask, TaskControl
from .the_oracle import DbClient


def memory_stats(meminfo='/proc/meminfo'):
    """Return ``(mem_size, mem_free, swap_size, swap_free)`` in bytes from
    *meminfo* (zeros for what it does not say)."""
    values = {}
    try:
        with open(meminfo) as f:
            for line in f:
                key, _, rest = line.partition(':')
                fields = rest.split()
                if fields and fields[0].isdigit():
                    values[key] = int(fields[0]) * 1024
    except OSError:
        pass
    return (values.get('MemTotal', 0), values.get('MemAvailable', 0),
            values.get('SwapTotal', 0), values.get('SwapFree', 0))


def cpu_temperature(path='/sys/class/thermal/thermal_zone0/temp'):
    """Return the CPU temperature in Celsius, or None where there's no
    sensor."""
    try:
        with open(path) as f:
            return int(f.read().strip()) / 1000
    except (OSError, ValueError):
        return None


class BigBrother(PauseableTask):
    """Collects statistics and hands them on.

    Queues:

    * ``stats_queue``: PULL, binds ``config.stats_queue``
      (:data:`~piwheels.protocols.big_brother`), from SlaveDriver,
      FileJuggler, CloudGazer and MrChase;
    * ``status_queue``: PUSH, connects ``config.int_status_queue``
      (:data:`~piwheels.protocols.master_status`): STATS for the monitors;
    * ``web_queue``: PUSH, connects ``config.web_queue``
      (:data:`~piwheels.protocols.the_secretary`): HOME and SEARCH;
    * a :class:`~piwheels.master.the_oracle.DbClient` (REQ).

    Its control queue also takes STATS (:meth:`replay_stats`).
    """

    def __init__(self, config):
        super().__init__(config, protocols.big_brother_control)
        self.output_path = config.output_path
        self.db = DbClient(config, self.logger)
        self.stats_queue = self.socket(
            transport.PULL, protocol=protocols.big_brother)
        self.stats_queue.bind(config.stats_queue)
        self.status_queue = self.socket(
            transport.PUSH, protocol=protocols.master_status.reversed())
        self.status_queue.hwm = 100
        self.status_queue.connect(config.int_status_queue)
        self.web_queue = self.socket(
            transport.PUSH, protocol=protocols.the_secretary.reversed())
        self.web_queue.hwm = 100
        self.web_queue.connect(config.web_queue)
        self.queue_sizes = {}
        self.disk = None
        self.slaves = {}
        self.last_build = None
        self.last_pypi_event = None
        self.latest = None
        self.register(self.stats_queue, self.handle_stats)
        seconds = 10 if config.dev_mode else 60
        self.every(timedelta(seconds=seconds), self.gen_stats)
        self.every(timedelta(minutes=10), self.gen_search)

    def close(self):
        self.db.close()
        super().close()

    def replay_stats(self):
        """Send the latest statistics to the monitors again (for a monitor
        that just arrived)."""
        self.send_control('STATS')

    def handle_control(self, queue):
        try:
            super().handle_control(queue)
        except TaskControl:
            if self.latest is not None:
                self.send(self.status_queue, 'STATS', self.latest)

    def handle_stats(self, queue):
        """Note a figure another task sent, or write HOME or SEARCH now."""
        msg, data = queue.recv_msg()
        if msg == 'STATBQ':
            self.queue_sizes = data
        elif msg == 'STATFS':
            self.disk = data
        elif msg == 'STATSLAVES':
            self.slaves = data.slaves
            self.last_build = data.last_build
        elif msg == 'STATPYPI':
            self.last_pypi_event = data
        elif msg == 'HOME':
            self.gen_stats()
        else:
            self.gen_search()

    def gen_stats(self):
        """Gather the statistics and send them to the monitors and the home
        page."""
        try:
            db = self.db.get_statistics()
        except (DatabaseError, TransportError) as exc:
            self.logger.error('BigBrother: unable to read statistics: %s', exc)
            return
        if self.disk is None:
            try:
                stat = os.statvfs(self.output_path)
            except OSError as exc:
                self.logger.error('BigBrother: unable to read the output\'s '
                                  'disk space: %s', exc)
                return
            disk_size = stat.f_frsize * stat.f_blocks
            disk_free = stat.f_frsize * stat.f_bavail
        else:
            disk_size, disk_free = self.disk
        mem_size, mem_free, swap_size, swap_free = memory_stats()
        self.latest = MasterStats(
            timestamp=utcnow(),
            packages_built=db.packages_built,
            builds_last_hour=db.builds_last_hour,
            builds_time=db.builds_time,
            builds_size=db.builds_size,
            builds_pending=db.builds_pending or self.queue_sizes,
            new_last_hour=db.new_last_hour,
            files_count=db.files_count,
            downloads_last_hour=db.downloads_last_hour,
            downloads_last_month=db.downloads_last_month,
            downloads_all=db.downloads_all,
            disk_size=disk_size, disk_free=disk_free,
            mem_size=mem_size, mem_free=mem_free,
            swap_size=swap_size, swap_free=swap_free,
            load_average=os.getloadavg()[0],
            cpu_temp=cpu_temperature(),
            slaves=self.slaves,
            last_pypi_event=self.last_pypi_event,
            last_build=self.last_build)
        self.send(self.status_queue, 'STATS', self.latest)
        self.send(self.web_queue, 'HOME', self.latest)

    def gen_search(self):
        """Send the search index (downloads per package) to be written."""
        try:
            index = self.db.get_search_index()
        except (DatabaseError, TransportError) as exc:
            self.logger.error('BigBrother: unable to read the search index: '
                              '%s', exc)
            return
        self.send(self.web_queue, 'SEARCH', index)

    def send(self, queue, msg, data):
        try:
            queue.send_msg(msg, data, transport.NOBLOCK)
        except transport.Again:
            self.logger.warning('BigBrother: %s dropped: nobody is taking '
                                'them', msg)
