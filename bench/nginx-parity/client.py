"""The probe client: one HTTP/1.1 request per connection, TLS with SNI.

Part of bench/nginx-parity (README.md there). Sends exactly the same bytes
to nginx and to greenlight; TLS offers only http/1.1 by
ALPN and verifies nothing (the certificate is the run's own). `Host` is what
a client of the config's original port would send (the name, plus `:port`
unless the port is 80/443 for its scheme).
"""
import base64
import http.client
import json
import socket
import ssl

TIMEOUT = 5.0
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def _ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


CTX = _ctx()


def send(port, probe):
    """The answer to `probe` on 127.0.0.1:port as a dict (see compare.py)."""
    # the Host a client of the original port sends: with the port unless it is the scheme's default
    host = probe.host if probe.port == (443 if probe.tls else 80) else f"{probe.host}:{probe.port}"
    lines = [f"{probe.method} {probe.path} HTTP/1.1", f"Host: {host}", "User-Agent: nginx-parity",
             "Accept: */*"]
    if probe.method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: 0")
    if probe.ws:
        lines += ["Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
                  f"Sec-WebSocket-Key: {WS_KEY}"]
    else:
        lines.append("Connection: close")
    if probe.spoof:
        lines.append(f"{probe.spoof[0]}: {probe.spoof[1]}")
    for name, value in probe.extra:
        if value == "@etag":
            # the ETag this side gave for the same path a moment ago
            first = send(port, probe._replace(extra=()))
            value = dict(first.get("headers", [])).get("etag", '"none"')
        lines.append(f"{name}: {value}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
    sock = None
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        if probe.tls:
            sni = probe.host if not probe.host.replace(".", "").isdigit() else None
            sock = CTX.wrap_socket(sock, server_hostname=sni)
        sock.sendall(raw)
        resp = http.client.HTTPResponse(sock, method=probe.method)
        resp.begin()
        headers = [(k.lower(), v) for k, v in resp.getheaders()]
        body = b"" if resp.status == 101 or probe.method == "HEAD" else resp.read(1 << 16)
        return {"status": resp.status, "headers": headers, "body": body, "seen": _seen(headers, body)}
    except ssl.SSLError as e:
        return {"error": f"tls error ({e.reason or e.__class__.__name__})"}
    except socket.timeout:
        return {"error": "timeout"}
    except (ConnectionError, http.client.HTTPException, OSError) as e:
        return {"error": f"connection error ({e.__class__.__name__})"}
    finally:
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def _seen(headers, body):
    """What the reflector received, when the answer came from it."""
    h = dict(headers)
    if "x-parity-upstream" not in h:
        return None
    try:
        if "x-parity-seen" in h:
            return json.loads(base64.b64decode(h["x-parity-seen"]))
        return json.loads(body)
    except ValueError:
        return None
