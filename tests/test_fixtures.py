"""The shared fixtures themselves: the private cluster and the local index."""

import subprocess
import sys
import urllib.request


def test_pg_cluster_runs_queries(pg_cluster):
    assert pg_cluster.psql('SELECT 40 + 2').strip() == '42'


def test_pg_cluster_user_is_not_superuser(pg_cluster):
    assert pg_cluster.psql(
        "SELECT rolsuper FROM pg_roles WHERE rolname = 'piwheels'").strip() == 'f'


def test_package_index_serves_sdist(package_index, tmp_path):
    package_index.add_sdist('pure', 'piwtest-fixture', '1.0')
    page = urllib.request.urlopen(package_index.url + 'piwtest-fixture/').read()
    assert b'piwtest-fixture-1.0.tar.gz#sha256=' in page
    result = subprocess.run(
        [sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-build-isolation',
         '--index-url', package_index.url, '-d', str(tmp_path),
         'piwtest-fixture==1.0'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 0, result.stdout
    assert (tmp_path / 'piwtest-fixture-1.0.tar.gz').exists()
