"""Deploy tests: the Debian packages in a systemd container (make test-debs).

They need root, podman and the Debian mirror and take minutes, so they are
only collected when PIWHEELS_DEPLOY_TESTS=1 (``make test-debs`` and ``make
test-deploy`` set it); the ordinary suite leaves them out.
"""

import os

if os.environ.get('PIWHEELS_DEPLOY_TESTS') != '1':
    collect_ignore_glob = ['test_*.py']
