"""What the tests' Python services (openstack_cloud.py, keystone_server.py) share."""

import os
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def serve(app, port):
    """A threaded WSGI server for `app` on 127.0.0.1 (port 0: a free one); call serve_forever()."""
    return make_server('127.0.0.1', port, app, server_class=_Server, handler_class=_QuietHandler)


def watch_parent(stop, os_module=os, threading_module=threading):
    """Calls stop() when standard input closes: a parent that died without SIGTERM leaves nothing behind.

    Under eventlet, pass its original os and threading modules: the watch needs a real thread.
    """
    def wait():
        while os_module.read(0, 4096):
            pass
        stop()

    threading_module.Thread(target=wait, daemon=True).start()
