"""What counts as the same answer from nginx and from greenlight.

Part of bench/nginx-parity; README.md there lists these rules. Compared:
status, Location, every response header the config sets (add_header), which
upstream was reached and what it saw (method, path, query, Host,
X-Forwarded-For/-Proto/-Host, X-Real-IP, every proxy_set_header name), and
the body and Content-Type of a 2xx answer the proxy made itself. Port
numbers of the run are mapped back to the config's own before comparing.
Four kinds of difference are intended (greenlight's design, counted equal
and reported by name unless --strict): see INTENDED.
"""
import hashlib
import re

FORWARDED = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip")
# hop-by-hop or framing: how each proxy talks to the upstream, not what it means
NOT_COMPARED = {"connection", "keep-alive", "te", "transfer-encoding", "content-length",
                "proxy-connection", "upgrade"}

INTENDED = {
    "websocket-always": "greenlight forwards a WebSocket upgrade on every route; nginx only "
                        "where the config passes Upgrade/Connection (101 vs the upstream's 200)",
    "forced-upgrade": "nginx sent a fixed Upgrade header (proxy_set_header Upgrade websocket) on "
                      "a request whose client asked for no upgrade, and passed the upstream's 101 "
                      "on; greenlight never switches protocols a client did not ask for "
                      "(RFC 9110 section 7.8) and answers the upstream's 200",
    "hsts-over-http": "nginx sent Strict-Transport-Security on a plain-HTTP redirect; browsers "
                      "ignore HSTS received over plain HTTP (RFC 6797 section 8.1), so greenlight's "
                      "redirect of plain requests does not carry it",
    "forwarded-headers": "greenlight always sends X-Forwarded-For/-Proto/-Host; nginx only the "
                         "ones the config sets (a header nginx did not send at all, or the "
                         "client's X-Forwarded-For that nginx passed on and greenlight appended to)",
}


def normaliser(pmap, upstream_labels):
    """A function that maps this run's port numbers back to the config's.

    pmap: original listen port -> this run's port. upstream_labels: reflector
    port -> the upstream target the config named (so nginx's default
    `Host: $proxy_host` reads as the config's host, not 127.0.0.1:<port>).
    """
    subs = {f"127.0.0.1:{p}": label for p, label in upstream_labels.items()}
    subs.update({str(new): str(orig) for orig, new in pmap.items()})
    if not subs:
        return lambda s: s
    keys = sorted(subs, key=len, reverse=True)
    rx = re.compile(r"(?<![0-9])(" + "|".join(map(re.escape, keys)) + r")(?![0-9])")
    return lambda s: s if s is None else rx.sub(lambda m: subs[m.group(1)], s)


def _url(s):
    """A Location with the scheme's default port left out (https://h:443/ = https://h/)."""
    if s is None:
        return s
    return re.sub(r"^(https://[^/:?#]+):443(?=[/?#]|$)|^(http://[^/:?#]+):80(?=[/?#]|$)",
                  lambda m: m.group(1) or m.group(2), s)


def _hdr(headers, name):
    vals = [v for k, v in headers if k == name]
    return ", ".join(vals) if vals else None


def compare(probe, a, b, norm_a, norm_b, add_names, set_names, strict):
    """(differences as [(field, nginx, greenlight)], intended rules that applied)."""
    diffs, intended = [], set()

    def diff(field, x, y, rule=None):
        if x == y:
            return
        if rule and not strict:
            intended.add(rule)
        else:
            diffs.append((field, x, y))

    if "error" in a or "error" in b:
        diff("answer", a.get("error") or f"HTTP {a['status']}", b.get("error") or f"HTTP {b['status']}")
        return diffs, intended
    ws_rule = None
    if probe.ws and a["status"] == 200 and a["seen"] is not None and b["status"] == 101:
        ws_rule = "websocket-always"
    elif (not probe.ws and a["status"] == 101 and b["status"] == 200 and a["seen"] is not None
          and _hdr(a["seen"]["headers"], "upgrade") is not None):
        ws_rule = "forced-upgrade"
    diff("status", a["status"], b["status"], ws_rule)
    diff("Location", _url(norm_a(_hdr(a["headers"], "location"))),
         _url(norm_b(_hdr(b["headers"], "location"))))
    diff("Refresh", norm_a(_hdr(a["headers"], "refresh")), norm_b(_hdr(b["headers"], "refresh")))
    for name in add_names:
        if name == "content-length" or (name == "content-type" and max(a["status"], b["status"]) >= 400):
            continue  # framing, and the type of an error page: not what the config meant
        # nginx's 200 carries its add_header fields; greenlight's 101 is not
        # an answer those fields go on (nor would nginx's 101 be): the same
        # intended difference as the status.
        rule = ws_rule
        if (name == "strict-transport-security" and not probe.tls and 300 <= b["status"] < 400
                and a["status"] == b["status"] and _hdr(b["headers"], name) is None):
            rule = "hsts-over-http"
        diff(f"header {name}", norm_a(_hdr(a["headers"], name)), norm_b(_hdr(b["headers"], name)),
             rule)
    sa, sb = a["seen"], b["seen"]
    diff("upstream", sa["upstream"] if sa else "(not reached)", sb["upstream"] if sb else "(not reached)")
    if sa and sb:
        for k in ("method", "path", "query"):
            diff(f"upstream {k}", norm_a(sa[k]), norm_b(sb[k]))
        names = ["host", *FORWARDED] + [n for n in set_names if n not in NOT_COMPARED]
        for name in dict.fromkeys(names):
            x, y = norm_a(_hdr(sa["headers"], name)), norm_b(_hdr(sb["headers"], name))
            appended = name == "x-forwarded-for" and x is not None and y == f"{x}, 127.0.0.1"
            rule = "forwarded-headers" if name in FORWARDED[:3] and (x is None or appended) else None
            diff(f"upstream {name}", x, y, rule)
    elif not sa and not sb and a["status"] < 300 and b["status"] < 300:
        listing = probe.static and probe.path.endswith("/") and \
            b"Index of" in a["body"] and b"Index of" in b["body"]
        if not listing:  # a listing's layout is each server's own
            diff("body", _body(a["body"]), _body(b["body"]))
        if probe.static:
            diff("Content-Type", _type(a), _type(b))
        else:
            diff("Content-Type", _hdr(a["headers"], "content-type"), _hdr(b["headers"], "content-type"))
    if probe.static and not sa and not sb:
        _static(a, b, diff)
    return diffs, intended


def _body(raw):
    """The body as text, or (not UTF-8: a video, an image) its length and
    digest, so binary bodies compare byte for byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"{len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()[:16]}"


def _type(r):
    """Content-Type without the parameters one side adds (`; charset=utf-8`)."""
    t = _hdr(r["headers"], "content-type")
    return t.split(";")[0].strip().lower() if t else t


def _static(a, b, diff):
    """The file headers of a static probe answered by both proxies."""
    ha, hb = a["headers"], b["headers"]
    both_encoded = _hdr(ha, "content-encoding") and _hdr(hb, "content-encoding")
    if both_encoded:  # compression is compared only when both compress
        diff("Content-Encoding", _hdr(ha, "content-encoding"), _hdr(hb, "content-encoding"))
    if a["status"] < 300 and b["status"] < 300:
        # a listing may be chunked on one side: lengths compared when both send one
        if not both_encoded and _hdr(ha, "content-length") and _hdr(hb, "content-length") \
                and "content-encoding" not in dict(ha) and "content-encoding" not in dict(hb):
            diff("Content-Length", _hdr(ha, "content-length"), _hdr(hb, "content-length"))
        diff("ETag present", _hdr(ha, "etag") is not None, _hdr(hb, "etag") is not None)
        diff("Content-Range", _hdr(ha, "content-range"), _hdr(hb, "content-range"))
    if a["status"] < 400 and b["status"] < 400:
        diff("Cache-Control", _hdr(ha, "cache-control"), _hdr(hb, "cache-control"))
        diff("Expires present", _hdr(ha, "expires") is not None, _hdr(hb, "expires") is not None)
