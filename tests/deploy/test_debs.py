"""The Debian packages, installed with apt into a fresh bookworm systemd
container: commands, user and directories, units, the master against a
PostgreSQL in the container, the slave proving itself to it, the slave's
reboot guard, and purge.

The tests run in file order on one container (module fixture ``machine``);
each phase starts from the state the previous one left.
"""

import glob
import os
import shutil
import subprocess
import tempfile

import pytest

from piwheels import __version__

from .container import TOP, Container, podman_environment

pytestmark = pytest.mark.timeout(1800)

DIST = os.path.join(TOP, 'dist')
APT_CACHE = os.path.join(TOP, 'build', 'deploy-cache', 'apt')
STAMP = '/var/lib/piwheels/slave-proven'
CONF = '/etc/piwheels.conf'
#: the packages installable on plain Debian; piwheels-sense needs
#: python3-sense-hat, which only Raspberry Pi OS ships
INSTALLABLE = ('python3-piwheels', 'piwheels-master', 'piwheels-slave',
               'piwheels-monitor')
UNITS = ('piwheels-master.service', 'piwheels-slave.service',
         'piwheels-slave-reboot-guard.service')


def deb(package):
    """The path of *package*'s .deb in dist/."""
    found = glob.glob(os.path.join(DIST, '{}_*.deb'.format(package)))
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope='module')
def debs():
    """Build the packages into dist/ as ``make deb`` does (lintian is the
    first test), or with PIWHEELS_PREBUILT_DEBS=1 test those already in
    dist/ (e.g. built on another machine)."""
    if os.geteuid() != 0:
        pytest.fail('the deploy tests need root (debootstrap, podman, apt)')
    if os.environ.get('PIWHEELS_PREBUILT_DEBS') != '1':
        subprocess.run(
            [os.path.join(TOP, 'scripts', 'build-debs'), '--no-lintian'],
            check=True, timeout=900)
    return {package: deb(package) for package in INSTALLABLE + ('piwheels-sense',)}


@pytest.fixture(scope='module')
def machine(debs):
    """A fresh bookworm container with systemd, the packages installed by
    ``apt-get install ./*.deb``."""
    subprocess.run([os.path.join(TOP, 'scripts', 'build-bookworm-image')],
                   env=podman_environment(), check=True, timeout=900)
    os.makedirs(os.path.join(APT_CACHE, 'partial'), exist_ok=True)
    journal = tempfile.mkdtemp(prefix='piwheels-debs-journal-')
    container = Container('piwheels-debs-{}'.format(os.getpid()), {
        DIST: '/debs:ro',
        # downloaded .debs survive between runs; the container is new
        APT_CACHE: '/var/cache/apt/archives',
        # podman puts a tmpfs here; the journal must outlive a reboot
        journal: '/var/log/journal',
    })
    container.create()
    try:
        container.run('journalctl --flush')
        container.run('apt-get -q update', timeout=600)
        container.run(
            'DEBIAN_FRONTEND=noninteractive apt-get -q -y install {}'.format(
                ' '.join('/debs/' + os.path.basename(debs[package])
                         for package in INSTALLABLE)),
            timeout=1200)
        yield container
    finally:
        if os.environ.get('PIWHEELS_KEEP_CONTAINER') != '1':
            container.remove()
            shutil.rmtree(journal, ignore_errors=True)


def test_debs_lintian_reports_no_errors(debs):
    if shutil.which('lintian') is None:
        subprocess.run(['apt-get', '-q', '-y', 'install', '--no-install-recommends',
                        'lintian'], check=True, timeout=600,
                       env=dict(os.environ, DEBIAN_FRONTEND='noninteractive'))
    changes = glob.glob(os.path.join(DIST, 'piwheels_*.changes'))
    assert len(changes) == 1
    result = subprocess.run(['lintian', '--fail-on', 'error', changes[0]],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [line for line in result.stdout.splitlines()
                if line.startswith('E:')]


def test_debs_install_with_apt(machine):
    for package in INSTALLABLE:
        assert machine.output(
            "dpkg-query -W -f='${Status} ${Version}' " + package
        ) == 'install ok installed {}'.format(__version__)


def test_debs_commands_run_on_debian_libraries(machine):
    # the packages' own dependencies, not anything from PyPI
    assert machine.output(
        "python3 -c 'import sqlalchemy; print(sqlalchemy.__version__)'"
    ).startswith('1.4.')
    assert machine.output(
        "python3 -c 'import zmq; print(zmq.__file__)'"
    ).startswith('/usr/lib/python3/dist-packages/')
    assert machine.output('piw-master --version') == __version__
    assert '--proven-file' in machine.output('piw-slave --help')


@pytest.mark.parametrize('command', [
    'piw-monitor', 'piw-initdb', 'piw-import', 'piw-add', 'piw-remove',
    'piw-rebuild', 'piw-logger'])
def test_debs_command_runs_on_debian_libraries(machine, command):
    assert machine.output('{} --help'.format(command)).startswith('usage: ')


def test_debs_create_user_and_directories(machine):
    user = machine.output('getent passwd piwheels').split(':')
    assert user[5] == '/var/lib/piwheels'
    assert user[6] in ('/usr/sbin/nologin', '/sbin/nologin')
    assert int(user[2]) < 1000  # a system user
    assert machine.output('stat -c "%U:%G %a" /var/www/piwheels') == 'piwheels:piwheels 755'
    assert machine.output('stat -c "%U:%G %a" /var/lib/piwheels') == 'piwheels:piwheels 755'
    # writable only by piwheels
    assert machine.run('runuser -u nobody -- touch /var/www/piwheels/x',
                       check=False).returncode != 0
    machine.run('runuser -u piwheels -- touch /var/www/piwheels/x '
                '&& rm /var/www/piwheels/x')


def test_debs_ship_conffile(machine):
    assert CONF in machine.output(
        "dpkg-query -W -f='${Conffiles}' python3-piwheels")
    assert '[master]' in machine.output('cat ' + CONF)


def test_debs_enable_services_without_starting_them(machine):
    for unit in ('piwheels-master', 'piwheels-slave'):
        assert machine.output('systemctl is-enabled ' + unit) == 'enabled'
        assert machine.output('systemctl is-active ' + unit, check=False) == 'inactive'
    # the guard is only ever started by the slave's OnFailure=
    assert machine.output('systemctl is-enabled piwheels-slave-reboot-guard',
                          check=False) == 'static'


def test_debs_units_pass_systemd_analyze_verify(machine, debs):
    # piwheels-sense cannot be installed without Raspberry Pi OS's
    # python3-sense-hat: unpack it aside (never over /, whose /lib is a
    # symlink) and verify its unit, with its command in place meanwhile
    machine.run('dpkg-deb -x /debs/{} /tmp/sense && '
                'cp /tmp/sense/usr/bin/piw-sense /usr/bin/piw-sense'.format(
                    os.path.basename(debs['piwheels-sense'])))
    try:
        units = ' '.join(['/lib/systemd/system/' + unit for unit in UNITS] +
                         ['/tmp/sense/lib/systemd/system/piwheels-sense.service'])
        result = machine.run('systemd-analyze verify ' + units, check=False)
    finally:
        machine.run('rm -rf /tmp/sense /usr/bin/piw-sense')
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'piwheels' not in result.stdout + result.stderr


def test_debs_master_starts_against_postgresql(machine):
    machine.run('DEBIAN_FRONTEND=noninteractive apt-get -q -y install postgresql',
                timeout=1200)
    machine.run('runuser -u postgres -- createuser piwheels')
    machine.run('runuser -u postgres -- createdb -O postgres piwheels')
    machine.run('runuser -u postgres -- piw-initdb -y', timeout=600)
    # the test needs no PyPI: point the master at a closed local port
    machine.run("sed -i 's|^\\[master\\]$|[master]\\npypi-xmlrpc = "
                "http://127.0.0.1:9/pypi|' " + CONF)
    # Type=notify: start returns once the master said READY=1
    machine.run('systemctl start piwheels-master', timeout=600)
    assert machine.output('systemctl is-active piwheels-master') == 'active'
    pid = machine.output('systemctl show -p MainPID --value piwheels-master')
    assert machine.output('stat -c %U /proc/{}'.format(pid)) == 'piwheels'
    assert machine.wait_for(
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', 5555), 1)\"",
        timeout=60)


def test_debs_slave_proves_itself_to_the_master(machine):
    assert machine.run('test -e ' + STAMP, check=False).returncode != 0
    machine.run('systemctl start piwheels-slave', timeout=300)
    assert machine.output('systemctl is-active piwheels-slave') == 'active'
    # piw-slave --proven-file: written after the master's ACK
    assert machine.wait_for('test -s ' + STAMP, timeout=120), machine.output(
        'journalctl -b -u piwheels-slave -u piwheels-master --no-pager | tail -30')
    assert machine.output('stat -c %U ' + STAMP) == 'piwheels'
    # it runs in its sandbox (ProtectSystem=strict): the system is
    # read-only to it, its home (where the stamp is) writable
    pid = machine.output('systemctl show -p MainPID --value piwheels-slave')
    mounts = dict(line.split() for line in machine.output(
        "awk '{{print $5, $6}}' /proc/{}/mountinfo".format(pid)).splitlines())
    assert mounts['/'].startswith('ro,')
    assert mounts['/var/lib/piwheels'].startswith('rw,')


def test_debs_upgrade_restarts_running_services_and_keeps_the_configuration(machine, debs):
    pids = {unit: machine.output('systemctl show -p MainPID --value ' + unit)
            for unit in ('piwheels-master', 'piwheels-slave')}
    config = machine.output('cat ' + CONF)
    # a reinstall runs the maintainer scripts as an upgrade does
    machine.run('DEBIAN_FRONTEND=noninteractive apt-get -q -y install --reinstall {}'.format(
        ' '.join('/debs/' + os.path.basename(debs[package])
                 for package in INSTALLABLE)), timeout=600)
    for unit, pid in pids.items():
        assert machine.output('systemctl is-active ' + unit) == 'active'
        assert machine.output('systemctl show -p MainPID --value ' + unit) != pid
    assert machine.output('cat ' + CONF) == config


def break_slave(machine):
    """Misconfigure the slave (an option piw-slave does not know, so it exits
    at once) and, for the test only, restart it after 1 s instead of 10 s so
    it reaches its start limit quickly."""
    machine.run("sed -i 's/^\\[slave\\]$/[slave]\\nno-such-option = 1/' " + CONF)
    machine.write('/etc/systemd/system/piwheels-slave.service.d/test-fast-restart.conf',
                  '[Service]\nRestartSec=1s\n')
    machine.run('systemctl daemon-reload')


def journal(machine, unit, grep):
    """The distinct journal lines (all boots) of *unit* matching *grep*."""
    return machine.output(
        'journalctl --no-pager -o short-precise -u {} | grep -F -e {!r} '
        '| sort -u'.format(unit, grep), check=False).splitlines()


def test_debs_reboot_guard_reboots_a_proven_slave_once(machine):
    machine.run('systemctl stop piwheels-slave')
    break_slave(machine)
    machine.run('systemctl reset-failed piwheels-slave')
    machine.run('systemctl start --no-block piwheels-slave')
    # five quick failures, then the guard: the proven machine reboots (a
    # container stops when its systemd reboots)
    assert machine.wait_stopped(timeout=180), machine.output(
        'systemctl status --no-pager piwheels-slave piwheels-slave-reboot-guard',
        check=False)
    machine.start()
    assert journal(machine, 'reboot.target', 'Reached target reboot.target')
    assert len(journal(machine, 'piwheels-slave-reboot-guard', 'Finished')) == 1
    # the reboot consumed the proof
    assert machine.run('test -e ' + STAMP, check=False).returncode != 0
    # after the reboot the (still broken) slave fails again until it gives
    # up; the guard is skipped and the machine stays up
    assert machine.wait_for('systemctl is-failed --quiet piwheels-slave',
                            timeout=180)
    assert machine.wait_for(
        '[ "$(systemctl show -p ConditionResult --value '
        'piwheels-slave-reboot-guard)" = no ]', timeout=30)
    assert machine.state() == 'running'
    assert machine.output(
        'systemctl show -p NRestarts --value piwheels-slave') == '5'
    # OnFailure= fired once per boot, when the restarts ran out, not on
    # each failure
    assert len(journal(machine, 'piwheels-slave', 'Start request repeated too quickly')) == 2
    assert len(journal(machine, 'piwheels-slave-reboot-guard', 'unmet condition')) == 1


def test_debs_reboot_guard_rearms_once_the_slave_works_again(machine):
    machine.run("sed -i '/^no-such-option = 1$/d' " + CONF)
    machine.run('rm /etc/systemd/system/piwheels-slave.service.d/test-fast-restart.conf'
                ' && systemctl daemon-reload')
    machine.run('systemctl reset-failed piwheels-slave')
    machine.run('systemctl start piwheels-slave', timeout=300)
    assert machine.wait_for('test -s ' + STAMP, timeout=120)


def test_debs_purge_removes_only_what_the_packages_made(machine):
    machine.run('runuser -u piwheels -- touch /var/www/piwheels/published.html')
    output_before = machine.output('ls -A /var/www/piwheels')
    machine.run('DEBIAN_FRONTEND=noninteractive apt-get -q -y purge {}'.format(
        ' '.join(INSTALLABLE)), timeout=600)
    for unit in ('piwheels-master', 'piwheels-slave'):
        assert machine.output('systemctl is-active ' + unit, check=False) in (
            'inactive', 'failed')
    assert machine.run('test -e ' + STAMP, check=False).returncode != 0
    assert machine.run('test -e ' + CONF, check=False).returncode != 0
    assert machine.run('test -e /usr/bin/piw-master', check=False).returncode != 0
    # the operator's published output and the piwheels user stay
    assert machine.output('ls -A /var/www/piwheels') == output_before
    assert machine.output('getent passwd piwheels').startswith('piwheels:')
