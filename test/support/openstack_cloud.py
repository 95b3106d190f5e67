"""A real OpenStack Compute API (Nova) for the openstack driver tests, in one process.

Nova's own functional-test base sets up its services (API database and cells on SQLite, conductor,
scheduler, one compute with the fake virt driver, fake RPC) and the Placement, Neutron, Glance and
Cinder fixtures. This script then serves Nova's real `osapi_compute` paste app on 127.0.0.1 and
prints one JSON line when it answers: {"port": ..., "imageId": ..., "networkId": ...}.

Auth, as a Nova API in production is deployed:
- default: the paste pipeline without `authtoken`; the API trusts X-User-Id, X-Project-Id, X-Roles;
- --keystone-url: the real pipeline, whose keystonemiddleware checks every token with that Keystone.

It exits when its standard input closes (its parent is gone) or on SIGTERM.
"""

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile

PARSER = argparse.ArgumentParser()
PARSER.add_argument('--port', type=int, default=0)
PARSER.add_argument('--keystone-url', help='Keystone v3 URL that checks the tokens')
PARSER.add_argument('--keystone-user', default='admin')
PARSER.add_argument('--keystone-password')
PARSER.add_argument('--keystone-project', default='admin')
ARGS = PARSER.parse_args()
# Nova parses sys.argv itself; it must not see ours.
sys.argv = sys.argv[:1]
os.environ['OS_TEST_TIMEOUT'] = '0'

from nova.tests.functional import integrated_helpers  # noqa: E402  (patches the runtime first)
from nova.tests import fixtures as nova_fixtures  # noqa: E402
import wsgi_helpers  # noqa: E402  (beside this script)

VENV_PASTE = os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini')


def write_paste(folder):
    """Nova's shipped api-paste.ini, with authtoken dropped (no Keystone) or pointed at ours."""
    with open(VENV_PASTE) as f:
        text = f.read()
    if ARGS.keystone_url:
        # The options go into the authtoken filter's own section, the file's last.
        assert text.rstrip().rsplit('\n[', 1)[1].startswith('filter:authtoken]'), 'api-paste.ini changed shape'
        text = text.rstrip() + (
            f'\nwww_authenticate_uri = {ARGS.keystone_url}\nauth_url = {ARGS.keystone_url}\n'
            'auth_type = password\nuser_domain_name = Default\nproject_domain_name = Default\n'
            f'username = {ARGS.keystone_user}\npassword = {ARGS.keystone_password}\n'
            f'project_name = {ARGS.keystone_project}\n'
            # No cache of validated tokens: a revoked token is refused at once.
            'token_cache_time = -1\n'
        )
    else:
        assert text.count(' authtoken keystonecontext') == 2, 'api-paste.ini changed shape'
        text = text.replace(' authtoken keystonecontext', ' keystonecontext')
    path = os.path.join(folder, 'api-paste.ini')
    with open(path, 'w') as f:
        f.write(text)
    return path


class Cloud(integrated_helpers._IntegratedTestBase):
    # The real keystonemiddleware and NovaKeystoneContext, not the base's stand-ins.
    STUB_KEYSTONE = False
    # Builds run after POST /servers answers, as in a real cloud (BUILD, then ACTIVE or ERROR).
    CAST_AS_CALL = False

    def __init__(self, paste):
        super().__init__('runTest')
        self.paste = paste

    def _setup_services(self):
        self.flags(api_paste_config=self.paste, group='wsgi')
        # 1000 vCPUs: room for every test's servers; an impossible flavor still finds no host.
        self.flags(compute_driver='fake.FakeDriver')
        super()._setup_services()

    def runTest(self):
        pass


def watch_parent(stop):
    import eventlet.patcher
    wsgi_helpers.watch_parent(stop, eventlet.patcher.original('os'), eventlet.patcher.original('threading'))


def main():
    folder = tempfile.mkdtemp(prefix='vmdb-nova-')
    # Every temporary folder of the fixtures goes in here, and goes when Nova stops.
    tempfile.tempdir = folder
    cloud = Cloud(write_paste(folder))
    cloud.setUp()
    # The base turns warnings into errors and keeps every log line in memory: a test run wants neither.
    import warnings
    warnings.simplefilter('ignore')
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)

    httpd = wsgi_helpers.serve(cloud.api_fixture.app(), ARGS.port)

    def stop(*_):
        shutil.rmtree(folder, ignore_errors=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    watch_parent(stop)
    print(json.dumps({
        'port': httpd.server_port,
        'imageId': nova_fixtures.GlanceFixture.image1['id'],
        'networkId': nova_fixtures.NeutronFixture.network_1['id'],
    }), flush=True)
    httpd.serve_forever()


if __name__ == '__main__':
    main()
