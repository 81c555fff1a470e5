"""The monitors' view of the farm: slaves followed through their messages,
sorted by ABI and label, and absurd or unknown values shown as such."""

from datetime import timedelta

from piwheels import protocols
from piwheels.monitor.farm import (
    GONE_LINGER, FarmView, format_age, format_duration, format_free,
    format_load, format_size, format_temperature, utcnow,
)

from .scripted import master_stats, slave_hello, slave_stats


def event(farm, slave_id, action, data=None, at=None):
    at = at or utcnow()
    farm.update('SLAVE', protocols.SlaveEvent(slave_id, at, action, data),
                now=at)


def built(status=True):
    return protocols.BuildResult(status, timedelta(seconds=30), '', [],
                                 '' if status else 'error')


def test_farm_follows_a_slave_through_a_build():
    farm = FarmView()
    start = utcnow()
    event(farm, 1, 'HELLO', slave_hello('pi-1'), start)
    slave = farm.slaves[1]
    assert (slave.label, slave.abi, slave.state) == ('pi-1', 'cp311',
                                                      'starting')
    event(farm, 1, 'IDLE', slave_stats(), start)
    assert slave.state == 'idle'
    event(farm, 1, 'BUILD', protocols.BuildRequest('numpy', '1.26.4'), start)
    event(farm, 1, 'BUSY', slave_stats(load=2.5),
          start + timedelta(seconds=5))
    assert slave.state == 'building'
    assert slave.build_text() == 'numpy 1.26.4'
    assert slave.build_duration(start + timedelta(minutes=2)) == \
        timedelta(minutes=2)
    assert slave.stats.load_average == 2.5
    event(farm, 1, 'BUILT', built(), start + timedelta(minutes=3))
    assert slave.state == 'sending'
    event(farm, 1, 'DONE', at=start + timedelta(minutes=4))
    assert slave.state == 'cleaning'
    event(farm, 1, 'IDLE', slave_stats(), start + timedelta(minutes=5))
    assert slave.state == 'idle'
    assert slave.build_text() == ''
    assert slave.last_seen == start + timedelta(minutes=5)


def test_farm_failed_build_goes_to_cleaning():
    farm = FarmView()
    event(farm, 1, 'HELLO', slave_hello('pi-1'))
    event(farm, 1, 'BUILD', protocols.BuildRequest('broken', '1.0'))
    event(farm, 1, 'BUILT', built(status=False))
    assert farm.slaves[1].state == 'cleaning'
    assert farm.slaves[1].build_status is False


def test_farm_replayed_hello_keeps_the_slave_state():
    farm = FarmView()
    event(farm, 1, 'HELLO', slave_hello('pi-1'))
    event(farm, 1, 'BUILD', protocols.BuildRequest('numpy', '1.26.4'))
    event(farm, 1, 'BUSY', slave_stats())
    # another monitor arrived: the master replays HELLO and its last reply
    event(farm, 1, 'HELLO', slave_hello('pi-1'))
    event(farm, 1, 'CONT')
    slave = farm.slaves[1]
    assert slave.state == 'building'
    assert slave.build_text() == 'numpy 1.26.4'
    assert slave.stats is not None


def test_farm_shows_a_slave_never_introduced_as_unknown():
    farm = FarmView()
    event(farm, 7, 'CONT')
    slave = farm.slaves[7]
    assert (slave.label, slave.abi) == ('?', '?')
    assert slave.state == 'building'
    # building, but what was never said
    assert slave.build_text() == '?'


def test_farm_sorts_slaves_by_abi_then_label_unknown_last():
    farm = FarmView()
    event(farm, 1, 'HELLO', slave_hello('zeta', 'cp311'))
    event(farm, 2, 'HELLO', slave_hello('alpha', 'cp313'))
    event(farm, 3, 'HELLO', slave_hello('beta', 'cp311'))
    event(farm, 4, 'IDLE', slave_stats())
    event(farm, 5, 'HELLO', slave_hello('alpha', 'cp311'))
    assert [slave.slave_id for slave in farm.sorted_slaves()] == \
        [5, 3, 1, 2, 4]


def test_farm_keeps_a_slave_that_left_for_a_moment():
    farm = FarmView()
    start = utcnow()
    event(farm, 1, 'HELLO', slave_hello('pi-1'), start)
    event(farm, 1, 'DIE', '', start)
    assert farm.slaves[1].state == 'terminating'
    event(farm, 1, 'BYE', at=start)
    assert [slave.state for slave in farm.sorted_slaves(start)] == ['gone']
    # later messages about it change nothing
    event(farm, 1, 'IDLE', slave_stats(), start)
    assert farm.slaves[1].state == 'gone'
    assert farm.sorted_slaves(start + GONE_LINGER + timedelta(seconds=1)) \
        == []


def test_farm_shows_long_builds_and_silent_slaves():
    farm = FarmView()
    start = utcnow()
    event(farm, 1, 'HELLO', slave_hello('pi-1'), start)
    event(farm, 1, 'BUILD', protocols.BuildRequest('scipy', '1.0'), start)
    slave = farm.slaves[1]
    assert slave.display_state(start + timedelta(minutes=4)) == 'building'
    event(farm, 1, 'BUSY', slave_stats(), start + timedelta(minutes=16))
    assert slave.display_state(start + timedelta(minutes=16)) == \
        'long build'
    assert slave.display_state(start + timedelta(minutes=22)) == 'silent'


def test_farm_starts_afresh_after_reconnecting():
    farm = FarmView()
    event(farm, 1, 'HELLO', slave_hello('pi-1'))
    farm.update('STATS', master_stats())
    farm.update('PAUSED', True)
    farm.update('HELLO', protocols.MasterInfo(utcnow(), 'master', '1'))
    assert farm.connection == 'connected'
    # a HELLO while connected (another monitor arrived) keeps everything
    assert farm.slaves and farm.stats is not None and farm.paused
    farm.disconnected()
    assert farm.connection == 'disconnected'
    farm.update('HELLO', protocols.MasterInfo(utcnow(), 'master', '1'))
    assert farm.connection == 'connected'
    assert farm.slaves == {}
    assert farm.stats is None
    assert farm.paused is None


def test_farm_counts_messages_not_understood():
    farm = FarmView()
    farm.bad_message('monitor_status: unknown action FOO')
    farm.bad_message('monitor_status: invalid CBOR')
    assert farm.bad_messages == 2
    assert farm.last_bad_message == 'monitor_status: invalid CBOR'
    assert farm.silence() is not None


def test_farm_statistics_totals():
    farm = FarmView()
    assert farm.pending_builds() is None
    assert farm.disk_free_fraction() is None
    farm.update('STATS', master_stats(
        pending={'cp311': 17, 'cp313': 3}, last_hour={'cp311': 40,
                                                      'cp313': 2},
        disk_free=25, disk_size=100))
    assert farm.pending_builds() == 20
    assert farm.builds_last_hour() == 42
    assert farm.disk_free_fraction() == 0.25
    farm.update('STATS', master_stats(disk_free=200, disk_size=100))
    assert farm.disk_free_fraction() is None


def test_formats_of_sensible_values():
    now = utcnow()
    assert format_size(512) == '512 B'
    assert format_size(3 * 2 ** 30) == '3.0 GB'
    assert format_free(2 ** 30, 4 * 2 ** 30) == '1.0 GB (25%)'
    assert format_duration(timedelta(seconds=45)) == '45s'
    assert format_duration(timedelta(minutes=3, seconds=5)) == '3m05s'
    assert format_duration(timedelta(hours=2, minutes=7)) == '2h07m'
    assert format_duration(timedelta(days=3, hours=4)) == '3d04h'
    assert format_age(now - timedelta(seconds=12), now) == '12s'
    assert format_load(0.5) == '0.50'
    assert format_temperature(47.25) == '47.2C'


def test_formats_show_absurd_values_as_unknown():
    now = utcnow()
    assert format_size(-1) == '?'
    assert format_free(2 ** 62, 30 * 2 ** 30) == '?'
    assert format_free(1, 0) == '?'
    assert format_duration(timedelta(seconds=-5)) == '?'
    assert format_duration(timedelta(days=100000)) == '?'
    assert format_age(now + timedelta(hours=1), now) == '?'
    # another clock a little ahead counts as now
    assert format_age(now + timedelta(seconds=20), now) == '0s'
    for load in (float('nan'), float('inf'), -1.0, 1e12):
        assert format_load(load) == '?'
    for temperature in (float('nan'), 1e9, -273.0):
        assert format_temperature(temperature) == '?'
    assert format_temperature(None) == '-'
    assert format_size(None) == '-'


def test_farm_learns_a_build_in_progress_from_a_replay():
    farm = FarmView()
    began = utcnow() - timedelta(minutes=7)
    # what SlaveDriver replays to a monitor arriving mid-build
    event(farm, 2, 'HELLO', slave_hello('pi-2'))
    event(farm, 2, 'BUILD', protocols.BuildRequest('numpy', '1.26.4'), began)
    event(farm, 2, 'BUSY', slave_stats(), began + timedelta(minutes=6))
    event(farm, 2, 'CONT')
    slave = farm.slaves[2]
    assert slave.state == 'building'
    assert slave.build_text() == 'numpy 1.26.4'
    assert slave.build_duration(began + timedelta(minutes=7)) == \
        timedelta(minutes=7)
    assert slave.last_seen == began + timedelta(minutes=6)
