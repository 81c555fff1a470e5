"""The monitors of the master: piw-monitor (a terminal UI) and piw-sense (a Sense HAT UI).

Both follow the master's status queue (:data:`~piwheels.protocols.monitor_status`)
and send commands on its control queue
(:data:`~piwheels.protocols.master_control`) through a
:class:`~piwheels.monitor.link.MasterLink`, which keeps a
:class:`~piwheels.monitor.farm.FarmView` of the master, its statistics and
its slaves; :mod:`piwheels.monitor.tui` and :mod:`piwheels.monitor.sense`
draw that view.
"""
