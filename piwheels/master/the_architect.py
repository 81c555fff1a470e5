"""TheArchitect: keeps SlaveDriver's per-ABI build queues fresh from the database.

Every few seconds (every second in development mode) it asks the database
for the versions waiting to be built for each ABI (the database keeps that
queue up to date as versions and builds arrive, so the query is one index
scan) and pushes the result, with the time the query began, to SlaveDriver,
which replaces its queues with it.
"""

from datetime import timedelta

from .. import protocols, transport
from ..exc import DatabaseError, TransportError
from ..protocols import BuildQueue, PackageVersion
from ..states import utcnow
from ..tasks import PauseableTask
from .the_oracle import DbClient

#: versions queued per ABI
QUEUE_LIMIT = 1000


class TheArchitect(PauseableTask):
    """Refreshes the build queues of SlaveDriver.

    Queues:

    * ``builds_queue``: PUSH, connects ``config.builds_queue``
      (:data:`~piwheels.protocols.the_architect`), to SlaveDriver;
    * a :class:`~piwheels.master.the_oracle.DbClient` (REQ) to the
      database.

    While paused it doesn't query.
    """

    def __init__(self, config):
        super().__init__(config)
        self.db = DbClient(config, self.logger)
        self.builds_queue = self.socket(
            transport.PUSH, protocol=protocols.the_architect.reversed())
        self.builds_queue.hwm = 1
        self.builds_queue.connect(config.builds_queue)
        interval = timedelta(seconds=1 if config.dev_mode else 5)
        self.every(interval, self.update_build_queue)

    def close(self):
        self.db.close()
        super().close()

    def update_build_queue(self):
        """Query the queue of each ABI and push it to SlaveDriver (unless it
        has not taken the last one yet: then the next refresh is soon
        enough)."""
        queried_at = utcnow()
        try:
            queue = self.db.get_build_queue(QUEUE_LIMIT)
        except (DatabaseError, TransportError) as exc:
            self.logger.error('TheArchitect: unable to read the build queue: '
                              '%s', exc)
            return
        try:
            self.builds_queue.send_msg('QUEUE', BuildQueue(queried_at, {
                abi: [PackageVersion(*entry) for entry in versions]
                for abi, versions in queue.items()}), transport.NOBLOCK)
        except transport.Again:
            self.logger.debug('TheArchitect: SlaveDriver has not taken the '
                              'previous queue yet')
