"""The CPU time of the processes a benchmark measures, from ``/proc``."""

import os


def cpu_seconds(pid):
    """Return the CPU time (user + system) process *pid* has used."""
    with open('/proc/{}/stat'.format(pid)) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def tree_cpu_seconds(pid):
    """Return the CPU time process *pid* and the processes it started (and
    so on) have used, those still running."""
    parents = {}
    for child in os.listdir('/proc'):
        if not child.isdigit():
            continue
        try:
            with open('/proc/{}/stat'.format(child)) as f:
                parents.setdefault(
                    f.read().rsplit(')', 1)[1].split()[1], []).append(child)
        except (OSError, IndexError):
            pass    # gone meanwhile
    total, todo = 0, [str(pid)]
    while todo:
        pid = todo.pop()
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue    # gone meanwhile
        todo.extend(parents.get(pid, []))
    return total


def database_cpu_seconds(cluster):
    """Return the CPU time the PostgreSQL server of *cluster* (its
    postmaster and the processes it started) has used."""
    with open(os.path.join(cluster.data, 'postmaster.pid')) as f:
        return tree_cpu_seconds(f.readline().strip())
