"""Which requests to send: one plan per config, the same for nginx and greenlight.

Part of bench/nginx-parity (README.md there). For every server block: each
server name (a sample name for wildcards and regex names) plus one unknown
Host on every port; every location's path (prefix: the prefix and
prefix+"x"; exact: the path; regex: a generated path that matches, or a
note); each with and without a query string; over each port the server
listens on (TLS where the listen says ssl, SNI = the name); and a WebSocket
upgrade on each location path.
"""
import re
from collections import namedtuple

from docroot import Mp4Prefix
from nginxconf import walk, servers, server_names, locations
from rewrite import listen_port

UNKNOWN_HOST = "parity-unknown.invalid"
QUERY = "q=1&next=%2Fa"
MAX_PROBES = 400

# spoof: None, or (header, value) sent as the client's forwarded address (configs with real_ip_*)
# method: GET, or a method an `if ($request_method = M)` of the config names
# extra: more request headers, (name, value) pairs; the value "@etag" is the ETag of a first GET
# static: a static-file probe (compare.py then also compares the file's headers)
Probe = namedtuple("Probe", "port tls host path ws spoof method extra static",
                   defaults=(None, "GET", (), False))
SPOOFED_IP = "203.0.113.7"


def probe_label(p):
    scheme = "https" if p.tls else "http"
    default = 443 if p.tls else 80
    port = "" if p.port == default else f":{p.port}"
    what = "ws " if p.ws else (f"{p.spoof[0]}: {p.spoof[1]} " if p.spoof else "")
    what += "".join(f"{k}: {v} " for k, v in p.extra)
    if p.method != "GET":
        what = f"{p.method} {what}"
    return f"{what}{scheme}://{p.host}{port}{p.path}"


def _pcre_to_python(pat):
    return re.sub(r"\(\?<([A-Za-z_]\w*)>", r"(?P<\1>", pat).replace("(?'", "(?P<").replace("\\Z", "$")


class _Gen:
    """A small generator of one string that a (simple) regex matches."""

    def __init__(self, pat):
        self.p, self.i = pat, 0

    def peek(self):
        return self.p[self.i] if self.i < len(self.p) else None

    def alt(self):
        first = self.seq()
        while self.peek() == "|":
            self.i += 1
            self.seq()  # other branches are parsed and ignored
        return first

    def seq(self):
        out = []
        while self.peek() not in (None, "|", ")"):
            atom = self.atom()
            q = self.peek()
            if q == "?":
                self.i += 1
                atom = ""
            elif q in ("*", "+"):  # once: "/img/.*\.png" gives "/img/a.png", not "/img/.png"
                self.i += 1
            elif q == "{":
                m = re.match(r"\{(\d*)(,?)(\d*)\}", self.p[self.i:])
                if not m:
                    raise ValueError("bad quantifier")
                self.i += m.end()
                atom = atom * int(m.group(1) or 0)
            if self.peek() in ("?", "+"):  # lazy / possessive
                self.i += 1
            out.append(atom)
        return "".join(out)

    def atom(self):
        c = self.p[self.i]
        self.i += 1
        if c == "^" or c == "$":
            return ""
        if c == ".":
            return "a"
        if c == "(":
            if self.p.startswith("?:", self.i):
                self.i += 2
            elif self.p.startswith("?P<", self.i) or self.p.startswith("?<", self.i):
                self.i = self.p.index(">", self.i) + 1
            elif self.p.startswith("?", self.i):
                raise ValueError("look-around or flags")
            s = self.alt()
            if self.peek() != ")":
                raise ValueError("unbalanced")
            self.i += 1
            return s
        if c == "[":
            j = self.i
            neg = self.p.startswith("^", j)
            if neg:
                j += 1
            end = self.p.index("]", j + 1)
            body = self.p[j:end]
            self.i = end + 1
            if neg:
                for cand in "a1-_":
                    if cand not in body:
                        return cand
                raise ValueError("negated class")
            if body.startswith("\\"):
                return {"d": "1", "w": "a", "s": "-"}.get(body[1:2], body[1:2])
            return body[0]
        if c == "\\":
            n = self.p[self.i]
            self.i += 1
            if n in "dDwWsS":
                return {"d": "1", "w": "a", "D": "a", "W": "-", "s": "-", "S": "a"}[n]
            if n.isalnum():
                raise ValueError("escape")
            return n
        return c


def sample_path(pattern, nocase):
    """A path that `pattern` (an nginx location regex) matches, or None."""
    try:
        s = _Gen(pattern).alt()
    except (ValueError, IndexError):
        return None
    if not pattern.startswith("^"):
        s = "/parity" + ("/" if not s.startswith("/") else "") + s
    if not s.startswith("/") or any(ch in s for ch in " #\"<>"):
        return None
    try:
        rx = re.compile(_pcre_to_python(pattern), re.I if nocase else 0)
    except re.error:
        return None
    return s if rx.search(s) else None


def sample_host(name):
    """A Host a client would send for one server_name value, or None."""
    if name in ("", "_", "localhost") or ("$" in name and not name.startswith("~")):
        return name if name == "localhost" else None  # "$": an envsubst placeholder
    if name.startswith("~"):
        pat = name[1:]
        try:
            h = _Gen(pat).alt().lower()
            ok = re.search(_pcre_to_python(pat), h, re.I)
        except (ValueError, IndexError, re.error):
            return None
        return h if ok and re.fullmatch(r"[a-z0-9][a-z0-9.-]*", h) else None
    if name.startswith("*."):
        return "wild." + name[2:]
    if name.startswith("."):
        return name[1:]
    if name.endswith(".*"):
        return name[:-2] + ".com"
    if re.fullmatch(r"[A-Za-z0-9.-]+", name):
        return name.lower()
    return None


def cert_names(main):
    """Every DNS name a certificate for this config should cover."""
    out = ["localhost"]
    for srv in servers(main):
        for n in server_names(srv):
            if n.startswith("."):
                out += [n[1:], "*" + n]
            elif re.fullmatch(r"(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", n):
                out.append(n.lower())
    return list(dict.fromkeys(out))


def plan(main, notes, static=None):
    """The probes for one config (`main` before its listens are rewritten).

    static: {id(server): [URL prefixes served as files]} (docroot.py): those
    get the static probes too."""
    static = static or {}
    probes = []
    per_port = {}  # port -> (tls, [paths of its first server])
    for srv in servers(main):
        ls = [d for d in srv.block if d.name == "listen"]
        ssl_on = any(d.name == "ssl" and d.values()[:1] == ["on"] for d in srv.block)
        ports = []
        for d in ls or []:
            v = d.values()
            port, unix = listen_port(v[0]) if v else (80, False)
            if not unix:
                ports.append((port, "ssl" in v[1:] or ssl_on,
                              "default_server" in v[1:] or "default" in v[1:]))
        if not ls:
            ports.append((80, ssl_on, False))
        paths = ["/"]
        for mod, pat in locations(srv.block):
            if pat.startswith("@"):
                continue
            if mod in ("", "^~"):
                paths += [pat, pat + "x"]
            elif mod == "=":
                paths.append(pat)
            elif mod in ("~", "~*"):
                s = sample_path(pat, mod == "~*")
                if s is None:
                    notes.append(f"line {srv.line}: location {mod} {pat}: no sample path generated, skipped")
                else:
                    paths.append(s)
        paths = [p for p in dict.fromkeys(paths) if p.startswith("/")]
        hosts = []
        for n in server_names(srv):
            h = sample_host(n)
            if h is None and n not in ("", "_"):
                notes.append(f"line {srv.line}: server_name {n}: no sample host, skipped")
            elif h is not None:
                hosts.append(h)
        for port, tls, default in ports:
            prev = per_port.get(port)
            if prev is None or (default and not prev[2]):
                per_port[port] = (tls or (prev[0] if prev else False), paths, default)
            elif tls and not prev[0]:
                per_port[port] = (True, prev[1], prev[2])
            for h in dict.fromkeys(hosts):
                probes += _probes_for(port, tls or per_port[port][0], h, paths)
                probes += static_probes(port, tls or per_port[port][0], h, static.get(id(srv), []))
    for port, (tls, paths, _) in per_port.items():
        probes += _probes_for(port, tls, UNKNOWN_HOST, paths)
    header = real_ip_header(main)
    if header:
        # the client claims another address: believed only from trusted peers (set_real_ip_from)
        probes += [p._replace(path=p.path, ws=False, spoof=(header, SPOOFED_IP))
                   for p in probes if not p.ws and "?" not in p.path]
    # methods the config tells apart (`if ($request_method = M)`): each also probed
    for m in request_methods(main):
        probes += [p._replace(method=m) for p in probes
                   if not p.ws and not p.spoof and "?" not in p.path and p.method == "GET"]
    # request headers an `if ($http_NAME …)` tests: each also sent with a value that makes
    # the condition change its answer
    for name, value in condition_headers(main):
        probes += [p._replace(spoof=(name, value)) for p in probes
                   if not p.ws and not p.spoof and "?" not in p.path and p.method == "GET"]
    # configs with proxy_redirect: the upstream answers 302 with a Location
    # (and Refresh) chosen by the probe (reflector.py, X-Parity-Redirect)
    probes += redirect_probes(main, probes)
    probes = list(dict.fromkeys(probes))
    if len(probes) > MAX_PROBES:
        notes.append(f"{len(probes)} probes, only the first {MAX_PROBES} sent")
        probes = probes[:MAX_PROBES]
    return probes


REDIRECT_HEADER = "X-Parity-Redirect"


def redirect_probes(main, probes):
    """For a config with `proxy_redirect`: each plain GET probe once more per
    Location the upstream answers with — the public host over http://, the
    upstream's own address (`@self`, which the reflector spells
    http://127.0.0.1:PORT: nginx's `default`), and each literal `from` of the
    config (its $request_uri, $host and $scheme filled in)."""
    froms = []
    for d, _ in walk(main):
        v = d.values() if d.name == "proxy_redirect" else []
        if len(v) == 2 and not v[0].startswith("~"):
            froms.append(v[0])
    if not any(d.name == "proxy_redirect" for d, _ in walk(main)):
        return []
    out = []
    for p in probes:
        if p.ws or p.spoof or p.static or p.method != "GET" or "?" in p.path:
            continue
        scheme = "https" if p.tls else "http"
        values = [f"http://{p.host}/parity-redirect", "@self/parity-redirect"]
        for f in froms:
            v = (f.replace("$request_uri", p.path).replace("$host", p.host)
                 .replace("$scheme", scheme))
            if "$" not in v:
                values.append(v + "parity-redirect")
        for v in dict.fromkeys(values):
            out.append(p._replace(extra=((REDIRECT_HEADER, v),)))
    return out


def static_probes(port, tls, host, prefixes):
    """Static-file probes under each prefix served as files: an existing
    file, a missing one (the SPA fallback where there is one), a directory
    with and without index and slash, a range, conditional requests and
    Accept-Encoding: gzip. The files are docroot.py's."""
    out = []
    for pre in prefixes:
        f = pre + "parity.txt"
        for path in (f, pre + "parity-missing.txt", pre + "parity-missing/deep", pre + "parity-sub",
                     pre + "parity-sub/", pre + "parity-dir", pre + "parity-dir/", pre):
            out.append(Probe(port, tls, host, path, False, static=True))
        for extra in ((("Range", "bytes=0-9"),), (("Range", "bytes=5000-"),),
                      (("If-None-Match", "@etag"),),
                      (("If-Modified-Since", "Tue, 14 Nov 2023 22:13:20 GMT"),),
                      (("Accept-Encoding", "gzip"),)):
            out.append(Probe(port, tls, host, f, False, extra=extra, static=True))
        out.append(Probe(port, tls, host, f, False, method="HEAD", static=True))
        if isinstance(pre, Mp4Prefix):
            out += mp4_probes(port, tls, host, pre)
    return out


# `?start=`/`&end=` on the mp4gen files (docroot.py): whole files, cuts at
# sample and chunk boundaries and inside chunks, between key frames (a
# location with mp4_start_key_frame then adds an edit list), a start past
# the end (500),
# arguments that are not times, a range of a cut answer, several ranges
# (nginx answers those with the whole cut), HEAD.
MP4_QUERIES = ("", "?start=0", "?start=2", "?start=1.3&end=3.9", "?end=2.5", "?start=2.0001",
               "?start=7.77&end=9", "?start=2.3", "?start=5.5&end=8", "?start=99", "?start=abc",
               "?start=3&end=1", "?START=1.5&x=1")


def mp4_probes(port, tls, host, pre):
    out = []
    for q in MP4_QUERIES:
        out.append(Probe(port, tls, host, pre + "parity.mp4" + q, False, static=True))
    for name in ("parity-late.mp4", "parity-co64.mp4"):
        for q in ("", "?start=0", "?start=2.5&end=4"):
            out.append(Probe(port, tls, host, pre + name + q, False, static=True))
    cut = pre + "parity.mp4?start=2"
    for extra in ((("Range", "bytes=0-99"),), (("Range", "bytes=6000-"),),
                  (("Range", "bytes=0-9,20-29"),), (("If-None-Match", "@etag"),)):
        out.append(Probe(port, tls, host, cut, False, extra=extra, static=True))
    out.append(Probe(port, tls, host, cut, False, method="HEAD", static=True))
    return out


def _probes_for(port, tls, host, paths):
    out = []
    for p in paths:
        out.append(Probe(port, tls, host, p, False))
        out.append(Probe(port, tls, host, p + "?" + QUERY, False))
        out.append(Probe(port, tls, host, p, True))
    return out


def request_methods(main):
    """Methods other than GET that an `if ($request_method = M)` names."""
    out = []
    for d, _ in walk(main):
        v = [a.strip("'\"()") for a in d.values()] if d.name == "if" else []
        if len(v) >= 3 and v[0] == "$request_method" and v[1] == "=" and v[2].isalpha():
            m = v[2].upper()
            if m != "GET":
                out.append(m)
    return list(dict.fromkeys(out))


def condition_headers(main):
    """(Header-Name, value) pairs for the request headers `if` conditions test:
    the compared text for `=`/`!=`, a sample the regex matches for `~`-forms, `1` for a
    bare `$http_NAME`."""
    out = []
    for d, _ in walk(main):
        if d.name != "if":
            continue
        v = [a for a in d.values()]
        if v:
            v[0] = v[0].lstrip("(")
            v[-1] = v[-1].rstrip(")")
        v = [a for a in v if a != ""] if len(v) < 3 else v
        if not v or not v[0].startswith("$http_"):
            continue
        name = "-".join(w.capitalize() for w in v[0][len("$http_"):].split("_"))
        if len(v) == 1:
            value = "1"
        elif len(v) >= 3 and v[1] in ("=", "!="):
            value = v[2].strip("'\"")
        elif len(v) >= 3 and v[1] in ("~", "~*", "!~", "!~*"):
            pat = v[2].strip("'\"")
            try:
                value = _Gen(pat).alt()
                if not re.search(_pcre_to_python(pat), value, re.I if v[1].endswith("*") else 0):
                    continue
            except (ValueError, IndexError, re.error):
                continue
        else:
            continue
        if value and re.fullmatch(r"[ -~]+", value) and "$" not in value:
            out.append((name, value))
    return list(dict.fromkeys(out))


def real_ip_header(main):
    """The header a real_ip config reads (None when it has no real_ip directive)."""
    header = None
    for d, _ in walk(main):
        if d.name == "real_ip_header" and d.args:
            header = d.values()[0]
        elif d.name == "set_real_ip_from" and header is None:
            header = "X-Real-IP"  # nginx's default real_ip_header
    if header == "proxy_protocol":
        return None
    return header


def config_header_names(main):
    """(response header names the config sets or hides, proxy_set_header names), lower case."""
    add, setn = [], []
    for d, _ in walk(main):
        v = d.values()
        if d.name in ("add_header", "more_set_headers", "proxy_hide_header", "more_clear_headers") and v:
            add.append(v[0].split(":")[0].lower())
        elif d.name == "proxy_set_header" and v:
            setn.append(v[0].lower())
    return list(dict.fromkeys(add)), list(dict.fromkeys(setn))
