"""A small static web server for the piwheels output directory, choosing
between the HTML and JSON forms of the index as the Apache role does.

``make run`` and the tests use it; production uses Apache with the same
rules (see the "Web output" chapter of the docs):

* a request for a directory (``/simple/``, ``/simple/foo/``) is answered
  with its ``index.json`` when the client's ``Accept`` header names
  ``application/vnd.pypi.simple.v1+json`` (PEP 691) with a quality above
  zero, with ``index.html`` otherwise; the reply carries ``Vary: Accept``;
* ``*.txt.gz`` build logs are sent as text with ``Content-Encoding: gzip``;
* hidden files (temporary files being written) are never served and a
  missing file is answered with ``404.html``.

Run as ``python -m piwheels.webserver [--port N] [--no-negotiate] DIR``.
"""

import argparse
import collections
import os
import sys
import threading
import urllib.parse
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

#: PEP 691's media type of the JSON form
JSON_TYPE = 'application/vnd.pypi.simple.v1+json'

#: the media types that ask for the JSON form of the index
_JSON_FORMS = (JSON_TYPE, 'application/vnd.pypi.simple.latest+json')

#: a record of one request, for tests and ``make run``'s log
ServedRequest = collections.namedtuple(
    'ServedRequest', ('method', 'path', 'accept', 'status', 'file', 'content_type'))


def parse_accept(header):
    """Parse an HTTP ``Accept`` *header* into a list of (media type, quality)
    pairs; a missing header accepts anything."""
    if not header:
        return [('*/*', 1.0)]
    result = []
    for item in header.split(','):
        fields = [field.strip() for field in item.split(';')]
        media = fields[0].lower()
        if not media:
            continue
        quality = 1.0
        for param in fields[1:]:
            key, _, value = param.partition('=')
            if key.strip().lower() == 'q':
                try:
                    quality = max(0.0, min(1.0, float(value)))
                except ValueError:
                    quality = 0.0
        result.append((media, quality))
    return result


def choose_index(accept_header, negotiate=True):
    """Return (index file name, content type) for a directory request with
    *accept_header*: the JSON form when the header names a PEP 691 JSON type
    with a quality above zero (as pip and uv do), else the HTML form; the
    rule of the Apache role. Without *negotiate* the HTML form is always
    chosen."""
    if negotiate and any(
            media in _JSON_FORMS and quality > 0
            for media, quality in parse_accept(accept_header)):
        return 'index.json', JSON_TYPE
    return 'index.html', 'text/html; charset=utf-8'


class OutputRequestHandler(SimpleHTTPRequestHandler):
    """Serves the output directory; see the module's description."""
    negotiate = True
    extensions_map = dict(
        SimpleHTTPRequestHandler.extensions_map,
        **{'.json': 'application/json', '.metadata': 'text/plain; charset=utf-8',
           '.whl': 'application/octet-stream', '.xml': 'application/xml',
           '.svg': 'image/svg+xml', '.js': 'text/javascript',
           '.css': 'text/css'})

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)

    def _record(self, status, filename=None, content_type=None):
        self.server.requests.append(ServedRequest(
            self.command, self.path, self.headers.get('Accept'), int(status),
            filename, content_type))

    def send_head(self):
        url_path = urllib.parse.urlsplit(self.path).path
        path = self.translate_path(self.path)
        parts = [part for part in urllib.parse.unquote(url_path).split('/') if part]
        if any(part.startswith('.') for part in parts):
            return self._not_found()
        if os.path.isdir(path):
            if not url_path.endswith('/'):
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header('Location', url_path + '/')
                self.send_header('Content-Length', '0')
                self.end_headers()
                self._record(HTTPStatus.MOVED_PERMANENTLY)
                return None
            filename, content_type = choose_index(
                self.headers.get('Accept'), self.negotiate)
            if not os.path.isfile(os.path.join(path, filename)):
                # a plain directory with only a page (e.g. /project/foo/)
                filename, content_type = 'index.html', 'text/html; charset=utf-8'
            return self._send_file(os.path.join(path, filename), content_type,
                                   vary=self.negotiate)
        if path.endswith('.txt.gz'):
            return self._send_file(path, 'text/plain; charset=utf-8', encoding='gzip')
        return self._send_file(path, self.guess_type(path))

    def _send_file(self, path, content_type, encoding=None, vary=False,
                   status=HTTPStatus.OK):
        try:
            f = open(path, 'rb')
        except OSError:
            return self._not_found()
        try:
            size = os.fstat(f.fileno()).st_size
            self.send_response(status)
            self.send_header('Content-Type', content_type)
            self.send_header('Content-Length', str(size))
            # a build log holding HTML stays text in every browser
            self.send_header('X-Content-Type-Options', 'nosniff')
            if encoding:
                self.send_header('Content-Encoding', encoding)
            if vary:
                self.send_header('Vary', 'Accept')
            self.end_headers()
        except BaseException:
            f.close()
            raise
        self._record(status, os.path.relpath(path, self.directory), content_type)
        return f

    def _not_found(self):
        page = os.path.join(self.directory, '404.html')
        if os.path.isfile(page) and self.command == 'GET':
            return self._send_file(page, 'text/html; charset=utf-8',
                                   status=HTTPStatus.NOT_FOUND)
        self.send_error(HTTPStatus.NOT_FOUND)
        self._record(HTTPStatus.NOT_FOUND)
        return None


class OutputServer:
    """Serve the output directory *path* over HTTP on *host*:*port* (0 picks
    a free port) in a background thread.

    :param bool negotiate: serve ``index.json`` to clients preferring the
        PEP 691 JSON form (default); otherwise always ``index.html``
    :param bool verbose: log each request on stderr
    """

    def __init__(self, path, host='127.0.0.1', port=0, negotiate=True, verbose=False):
        handler = type('Handler', (OutputRequestHandler,), {'negotiate': negotiate})
        self._server = ThreadingHTTPServer(
            (host, port), partial(handler, directory=os.path.abspath(path)))
        self._server.daemon_threads = True
        self._server.verbose = verbose
        #: the most recent requests served, oldest first
        self.requests = self._server.requests = collections.deque(maxlen=10000)
        self._thread = None

    @property
    def url(self):
        """The server's base URL, ending with a slash."""
        host, port = self._server.server_address[:2]
        return 'http://{}:{}/'.format(host, port)

    @property
    def index_url(self):
        """The URL to give pip's ``--index-url``."""
        return self.url + 'simple/'

    def pip_command(self, package='PACKAGE'):
        """The ``pip install`` line that installs *package* from this index."""
        return 'pip install --index-url {} {}'.format(self.index_url, package)

    def start(self):
        """Start serving in a daemon thread; returns the server."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name='webserver', daemon=True)
        self._thread.start()
        return self

    def serve_forever(self):
        """Serve in the calling thread until :meth:`close` or an interrupt."""
        self._server.serve_forever()

    def close(self):
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
            self._thread = None
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


def main(args=None):
    """Serve a directory until interrupted; prints the URLs to use."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('path', help='the output directory to serve')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to listen on (default: 127.0.0.1)')
    parser.add_argument('--port', type=int, default=8080,
                        help='port to listen on (default: 8080)')
    parser.add_argument('--no-negotiate', dest='negotiate', action='store_false',
                        help='always serve the HTML form of the index')
    config = parser.parse_args(args)
    server = OutputServer(config.path, config.host, config.port,
                          negotiate=config.negotiate, verbose=True)
    print('Serving {} at {}'.format(config.path, server.url))
    print('Try: {}'.format(server.pip_command()))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
