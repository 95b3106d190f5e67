"""A real Keystone (identity v3) for the openstack driver tests, on 127.0.0.1.

It keeps its database (SQLite) and its fernet keys in a temporary folder, runs keystone-manage
db_sync, fernet_setup, credential_setup and bootstrap (an admin user, project and role), then serves
Keystone's public WSGI app and prints one JSON line: {"port": ..., "url": ".../v3"}.
The tests add the compute endpoint, their project, users and application credentials through the
API. It exits when its standard input closes (its parent is gone) or on SIGTERM.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import wsgi_helpers  # beside this script

PARSER = argparse.ArgumentParser()
PARSER.add_argument('--admin-password', required=True)
PARSER.add_argument('--token-expiration', type=int, default=3600, help='seconds a token lives')
ARGS = PARSER.parse_args()
sys.argv = sys.argv[:1]

MANAGE = os.path.join(sys.prefix, 'bin', 'keystone-manage')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def write_config(folder):
    path = os.path.join(folder, 'keystone.conf')
    with open(path, 'w') as f:
        f.write(
            '[DEFAULT]\n'
            'use_stderr = true\n'
            '[database]\n'
            f'connection = sqlite:///{folder}/keystone.db\n'
            '[fernet_tokens]\n'
            f'key_repository = {folder}/fernet-keys\n'
            '[fernet_receipts]\n'
            f'key_repository = {folder}/fernet-receipts\n'
            '[credential]\n'
            f'key_repository = {folder}/credential-keys\n'
            '[token]\n'
            f'expiration = {ARGS.token_expiration}\n'
        )
    return path


def manage(config, *args):
    subprocess.run([MANAGE, '--config-file', config, *args], check=True, stdout=sys.stderr, stderr=sys.stderr)


def main():
    folder = tempfile.mkdtemp(prefix='vmdb-keystone-')

    def stop(*_):
        shutil.rmtree(folder, ignore_errors=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    wsgi_helpers.watch_parent(stop)
    config = write_config(folder)
    port = free_port()
    url = f'http://127.0.0.1:{port}/v3'
    user = str(os.getuid())
    group = str(os.getgid())
    manage(config, 'db_sync')
    manage(config, 'fernet_setup', '--keystone-user', user, '--keystone-group', group)
    manage(config, 'credential_setup', '--keystone-user', user, '--keystone-group', group)
    manage(config, 'bootstrap', '--bootstrap-password', ARGS.admin_password, '--bootstrap-region-id', 'RegionOne',
           '--bootstrap-public-url', url, '--bootstrap-internal-url', url, '--bootstrap-admin-url', url)

    os.environ['OS_KEYSTONE_CONFIG_FILES'] = config
    from keystone.server import wsgi
    app = wsgi.initialize_public_application()

    httpd = wsgi_helpers.serve(app, port)
    print(json.dumps({'port': port, 'url': url}), flush=True)
    httpd.serve_forever()


if __name__ == '__main__':
    main()
