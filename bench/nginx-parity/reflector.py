"""The upstream both proxies talk to: it answers with what it received.

Part of bench/nginx-parity (README.md there). One Reflector per config file,
listening on as many loopback ports as the config had upstream targets (so
the answer can say which original upstream a request reached). Each answer is
200 with a JSON body {upstream, method, path, query, headers}, and the header
X-Parity-Upstream; a WebSocket upgrade gets 101 (and the connection is then
closed); a request with `X-Parity-Redirect: URL` gets 302 with that Location
and `Refresh: 0; url=URL` (`@self` in it is this port's own http:// address). Ports of upstreams that nginx reached with `proxy_pass https://` are
served over TLS with the run's certificate; targets of fastcgi_pass and the
other non-HTTP *_pass directives accept and close at once (nginx: 502).
python3 stdlib only.
"""
import base64
import hashlib
import http.server
import json
import socketserver
import ssl
import threading

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "parity-reflector"

    def log_message(self, *args):  # quiet
        pass

    def _reflect(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        path, _, query = self.path.partition("?")
        seen = {
            "upstream": self.server.label,
            "method": self.command,
            "path": path,
            "query": query if "?" in self.path else None,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
        }
        upgrade = (self.headers.get("Upgrade") or "").lower() == "websocket"
        if upgrade and "upgrade" in (self.headers.get("Connection") or "").lower():
            key = self.headers.get("Sec-WebSocket-Key") or ""
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.send_header("X-Parity-Upstream", self.server.label)
            self.send_header("X-Parity-Seen", base64.b64encode(json.dumps(seen).encode()).decode())
            self.end_headers()
            self.close_connection = True
            return
        body = json.dumps(seen).encode()
        # a probe of a config with proxy_redirect asks for a redirect (probes.py);
        # `@self` is this upstream's own address, as nginx's `default` expects it
        redirect = self.headers.get("X-Parity-Redirect")
        if redirect:
            where = redirect.replace("@self", f"http://127.0.0.1:{self.server.server_address[1]}")
            self.send_response(302)
            self.send_header("Location", where)
            self.send_header("Refresh", f"0; url={where}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Parity-Upstream", self.server.label)
        self.send_header("X-Powered-By", "parity-reflector")  # something for proxy_hide_header to hide
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _reflect


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, port, label, tls_ctx):
        self.label = label
        self.tls_ctx = tls_ctx
        super().__init__(("127.0.0.1", port), _Handler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.tls_ctx is not None:
            sock.settimeout(10)
            # the handshake runs on the first read, in the handler's thread
            sock = self.tls_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):  # a proxy speaking FastCGI etc.: just drop
        pass


class _Closer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A FastCGI/uwsgi/scgi/gRPC target: accepts and closes at once (nginx answers 502)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port, label):
        self.label = label
        super().__init__(("127.0.0.1", port), socketserver.BaseRequestHandler)


class Reflector:
    """Serves every port of an Upstreams map (see rewrite.Upstreams)."""

    def __init__(self, upstreams, cert, key):
        self.servers = []
        for (label, tls), port in upstreams.ports.items():
            ctx = None
            if tls == "close":
                srv = _Closer(port, label)
                threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                                 daemon=True).start()
                self.servers.append(srv)
                continue
            if tls is True:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(cert, key)
            srv = _Server(port, label, ctx)
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                             daemon=True).start()
            self.servers.append(srv)

    def close(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()
