"""Rewrites a parsed nginx config so that it runs on loopback, self-contained.

Part of bench/nginx-parity (README.md there lists every rule). The same
rewrite is applied twice — once with nginx's ports, once with greenlight's —
so both proxies run the same shape: every `listen` to 127.0.0.1:<port>,
every upstream server and proxy_pass host to a port of the local reflector,
every certificate path to one generated certificate, and every directive
that would touch the outside (resolver, log files, pid, user, cache paths)
dropped or pointed into the run's temporary directory.
"""
import os
import re

from nginxconf import Directive, quote, unquote, walk, http_block, servers

# listen parameters kept (the rest would clash once every address is 127.0.0.1)
LISTEN_KEEP = {"default_server", "ssl", "http2", "proxy_protocol"}
MAIN_DROP = {"user", "pid", "daemon", "master_process", "lock_file", "worker_processes",
             "load_module", "working_directory", "worker_rlimit_core"}
ANY_DROP = {"resolver", "resolver_timeout", "ssl_dhparam", "ssl_password_file",
            "ssl_session_ticket_key", "ssl_stapling_file", "http3", "quic_retry",
            "ssl_early_data", "client_body_temp_path", "proxy_temp_path",
            "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path"}
CERT_DIRECTIVES = {"ssl_certificate", "proxy_ssl_certificate", "grpc_ssl_certificate",
                   "ssl_trusted_certificate", "ssl_client_certificate",
                   "proxy_ssl_trusted_certificate", "grpc_ssl_trusted_certificate"}
KEY_DIRECTIVES = {"ssl_certificate_key", "proxy_ssl_certificate_key",
                  "grpc_ssl_certificate_key"}
MODULES_ENABLED = "/etc/nginx/modules-enabled"
PROBE_USERS = "probe:$apr1$ZA5tAJoj$A.Z30yF5rmg5.Dgzdhmge1\n"
PASS_DIRECTIVES = {"fastcgi_pass", "uwsgi_pass", "scgi_pass", "grpc_pass", "memcached_pass"}


def listen_port(value):
    """(port, is_unix) of a listen address as nginx reads it."""
    if value.startswith("unix:"):
        return None, True
    m = re.search(r"\]:(\d+)$", value) or re.search(r"^(?:[^\[\]:]*:)?(\d+)$", value)
    if m:
        return int(m.group(1)), False
    return 80, False  # an address without a port is port 80


class Upstreams:
    """Maps each original upstream target to a reflector port (shared by both runs)."""

    def __init__(self, alloc_port):
        self.alloc_port = alloc_port
        self.ports = {}  # (label, mode) -> port; mode True = TLS, False = HTTP, "close"
        self.labels = {}  # port -> label

    def port(self, label, tls):
        """The reflector port for `label`; tls: True, False, or "close" (FastCGI etc.)."""
        key = (label, tls)
        if key not in self.ports:
            p = self.alloc_port()
            self.ports[key] = p
            self.labels[p] = label
        return self.ports[key]


_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def split_url(url):
    """(scheme, host, rest) of a proxy_pass URL, or None; scheme and host may hold variables.

    nginx's rules: the host ends at '/' or '?', and a variable right after a
    literal host (`http://api$request_uri`) is already part of the URI.
    """
    m = re.match(r"^(https?|grpcs?|\$\{?\w+\}?)://", url)
    if not m:
        return None
    scheme, s = m.group(1), url[m.end():]
    if s.startswith("unix:"):
        j = s.find(":", 5)
        host = s[:j + 1] if j >= 0 else s
        return scheme, host, s[len(host):]
    host, i = "", 0
    while i < len(s):
        c = s[i]
        if c in "/?":
            break
        if c == "$":
            v = _VAR.match(s, i)
            if not v or (host and not host.endswith(":")):
                break
            host += v.group()
            i = v.end()
            continue
        if c == "[":
            j = s.find("]", i)
            if j < 0:
                break
            host += s[i:j + 1]
            i = j + 1
            continue
        host += c
        i += 1
    return scheme, host, s[i:]


def _var_name(tok):
    v = _VAR.fullmatch(tok)
    return (v.group(1) or v.group(2)) if v else None


def _find_set(name, parents):
    """The `set $name` that a request reaches first in the innermost scope, or None."""
    for scope in reversed(parents):
        for d in reversed(scope.block):
            if d.name == "set" and len(d.args) >= 2 and _var_name(unquote(d.args[0])) == name:
                return d
    return None


def _variable_passes(main, upstreams, upstream_names, notes):
    """proxy_pass whose scheme or host comes from `set` variables: rewrites those `set`s.

    The proxy_pass itself keeps its variables (the importer sees the same shape);
    the literal values behind them point at the reflector. Returns the ids of
    the proxy_pass directives handled.
    """
    handled, done_sets = set(), {}
    for d, parents in walk(main):
        if d.name != "proxy_pass" or not d.args:
            continue
        raw = unquote(d.args[0])
        whole = _var_name(raw)
        if whole is not None:  # set $target http://host:port/x;  proxy_pass $target;
            sd = _find_set(whole, parents)
            inner = split_url(unquote(sd.args[1])) if sd is not None else None
            if inner is not None and "$" not in inner[0] + inner[1]:
                if inner[1] not in upstream_names:
                    port = upstreams.port(inner[1], inner[0] == "https")
                    sd.args[1] = quote(f"{inner[0]}://127.0.0.1:{port}{inner[2]}")
            else:
                notes.append(f"line {d.line}: proxy_pass {raw}: not a literal URL behind it, not rewritten")
            handled.add(id(d))
            continue
        parts = split_url(raw)
        if parts is None or ("$" not in parts[0] and "$" not in parts[1]):
            continue
        scheme, host, rest = parts
        values, sets = {}, {}
        for tok in [scheme] + [m.group() for m in _VAR.finditer(host)]:
            name = _var_name(tok)
            if name is None:
                continue
            sd = _find_set(name, parents)
            val = unquote(sd.args[1]) if sd is not None else None
            if val is None or "$" in val:
                break
            values[tok], sets[tok] = val, sd
        else:
            sch = values.get(scheme, scheme)
            orig = _VAR.sub(lambda m: values.get(m.group(), m.group()), host)
            inner = split_url(orig) if "://" in orig else None
            if inner is not None:  # set $target http://host:port;  proxy_pass $target
                sch, orig = inner[0], inner[1]
            if orig in upstream_names:
                handled.add(id(d))
                continue
            port = upstreams.port(orig, sch == "https")
            hpart, colon, ppart = host.rpartition(":") if not host.endswith("]") else ("", "", host)
            if not colon:
                hpart, ppart = host, ""
            new_host = []
            ok = True
            for piece, value in ((hpart, "127.0.0.1" if ppart else f"127.0.0.1:{port}"), (ppart, str(port))):
                if not piece:
                    continue
                name = _var_name(piece)
                if name is not None:
                    sd = sets[piece]
                    if done_sets.get(id(sd), value) != value:
                        ok = False
                    old = unquote(sd.args[1])
                    sd.args[1] = quote(f"{sch}://{value}" if "://" in old else value)
                    done_sets[id(sd)] = value
                    new_host.append(piece)
                elif "$" in piece:
                    ok = False
                else:
                    new_host.append(value)
            if ok:
                d.args = [quote(f"{scheme}://{':'.join(new_host)}{rest}")]
                handled.add(id(d))
                continue
        notes.append(f"line {d.line}: proxy_pass {raw}: host from variables that are not literal "
                     "`set`s, not rewritten")
        handled.add(id(d))
    return handled


def rewrite(main, *, listen_map, upstreams, cert, key, tmpdir, notes, for_nginx=True):
    """Rewrites `main` (a full config, see nginxconf.as_main) in place.

    listen_map: original port -> new port (every original port must be there).
    upstreams: an Upstreams shared by both runs of the same file.
    for_nginx: also add what only the nginx run needs (temp paths and an
    access log in tmpdir, instead of the package's /var paths); the importer
    is not shown these, so they cannot turn into warnings.
    Returns nothing; every change that alters behaviour appends to `notes`.
    """
    logs = os.path.join(tmpdir, "logs")
    upstream_names = set()
    https_upstreams = set()
    raw_upstreams = set()  # upstream blocks that fastcgi_pass & co. use
    log_formats = {"combined"}
    zones = set()
    for d, _ in walk(main):
        if d.name == "log_format" and d.args:
            log_formats.add(unquote(d.args[0]))
        if d.name.endswith("_cache_path"):
            zones.update(unquote(a)[len("keys_zone="):].split(":")[0] for a in d.args
                         if unquote(a).startswith("keys_zone="))
    http = http_block(main)
    if http is not None:
        for d, _ in walk(http.block):
            if d.name == "upstream" and d.args:
                upstream_names.add(unquote(d.args[0]))
        for d, _ in walk(http.block):
            if d.name == "proxy_pass" and d.args:
                parts = split_url(unquote(d.args[0]))
                if parts and parts[0] == "https":
                    https_upstreams.add(parts[1])
            if d.name in PASS_DIRECTIVES and d.args:
                raw_upstreams.add(unquote(d.args[0]))

    def fix_list(block, level):
        out = []
        for d in block:
            if level == "main" and d.name in ("stream", "mail"):
                notes.append(f"line {d.line}: {d.name} block dropped (not HTTP; nothing to probe)")
                continue
            if (level == "main" and d.name in MAIN_DROP) or d.name in ANY_DROP:
                if d.name == "resolver":
                    notes.append(f"line {d.line}: resolver dropped (no DNS in the run)")
                continue
            if d.name in ("proxy_cache", "fastcgi_cache", "uwsgi_cache", "scgi_cache") and d.args \
                    and unquote(d.args[0]) not in zones and unquote(d.args[0]) != "off":
                notes.append(f"line {d.line}: {d.name} {unquote(d.args[0])}: the zone is defined "
                             "outside this file: dropped")
                continue
            if d.name == "error_log":
                rest = [a for a in d.args[1:]]
                d.args = [quote(os.path.join(logs, "error.log"))] + rest
            elif d.name == "access_log" and d.args and unquote(d.args[0]) != "off":
                rest = [a for a in d.args[1:] if not unquote(a).startswith(("buffer=", "flush=", "gzip"))]
                if rest and "=" not in unquote(rest[0]) and unquote(rest[0]) not in log_formats:
                    notes.append(f"line {d.line}: access_log format {unquote(rest[0])} is not "
                                 "defined in this file: dropped")
                    rest = rest[1:]
                d.args = [quote(os.path.join(logs, "access.log"))] + rest
            elif d.name == "limit_req_zone":
                # rate limits depend on timing, not on the config's routing: out of the comparison
                d.args = [a if not unquote(a).startswith("rate=") else "rate=100000r/s" for a in d.args]
            elif d.name.endswith("_cache_path") and d.args:
                d.args[0] = quote(os.path.join(tmpdir, "cache", str(len(out)) + "-" + str(d.line)))
            elif d.name in CERT_DIRECTIVES and d.args:
                d.args = [quote(cert)]
            elif d.name in KEY_DIRECTIVES and d.args:
                d.args = [quote(key)]
            elif d.name == "auth_basic_user_file" and d.args:
                # The author's htpasswd is not here: both sides read one of
                # ours (user `probe`, password `probe-pass`, apr1).
                users = os.path.join(tmpdir, "htpasswd")
                with open(users, "w") as f:
                    f.write(PROBE_USERS)
                os.chmod(users, 0o644)
                d.args = [quote(users)]
                notes.append("auth_basic_user_file: a generated users file")
            elif d.name == "upstream" and d.block is not None and d.args:
                fix_upstream(d)
            elif d.name == "proxy_pass" and d.args:
                fix_pass(d, "http")
            elif d.name in PASS_DIRECTIVES and d.args:
                fix_pass(d, "raw")
            if d.block is not None:
                d.block = fix_list(d.block, "server" if d.name == "server" else
                                   ("http" if d.name == "http" else "inner"))
                if d.name == "server":
                    fix_server(d)
            out.append(d)
        return out

    def fix_upstream(up):
        name = unquote(up.args[0])
        tls = "close" if name in raw_upstreams else name in https_upstreams
        kept = []
        for d in up.block:
            if d.name == "server" and d.args:
                target = unquote(d.args[0])
                params = [a for a in d.args[1:] if unquote(a) not in ("resolve",)
                          and not unquote(a).startswith(("service=", "route=", "slow_start="))]
                port = upstreams.port(name, tls)
                d.args = [quote(f"127.0.0.1:{port}")] + params
                if target.startswith("unix:"):
                    notes.append(f"line {d.line}: upstream {name}: unix socket server to reflector port")
            elif d.name in ("resolve", "zone", "ntlm", "sticky"):
                continue  # NGINX Plus / module directives that need what the run has not
            kept.append(d)
        up.block = kept

    def fix_pass(d, kind):
        raw = unquote(d.args[0])
        if kind == "raw":  # fastcgi_pass host:port / unix:... (no scheme)
            if raw in upstream_names:
                return
            port = upstreams.port(raw, "close")
            d.args = [quote(f"127.0.0.1:{port}")]
            notes.append(f"line {d.line}: {d.name} pointed at a port that closes at once (nginx: 502)")
            return
        if id(d) in variable_passes:
            return  # rewritten (or noted) by _variable_passes
        parts = split_url(raw)
        if parts is None:
            notes.append(f"line {d.line}: proxy_pass {raw}: not understood, left as is")
            return
        scheme, host, rest = parts
        if host in upstream_names:
            return
        if "$" in host or "$" in scheme:
            return  # noted by _variable_passes
        port = upstreams.port(host, scheme == "https")
        d.args = [quote(f"{scheme}://127.0.0.1:{port}{rest}")]

    def fix_server(srv):
        listens = [d for d in srv.block if d.name == "listen"]
        has_ssl_on = any(d.name == "ssl" and d.values()[:1] == ["on"] for d in srv.block)
        http2_on = any(d.name == "http2" and d.values()[:1] == ["on"] for d in srv.block)
        if not listens:
            notes.append("server without listen: listens on 80 (made explicit)")
            listens = [Directive("listen", ["80"], None, srv.line)]
        merged = {}  # new port -> params, in order
        for d in listens:
            v = d.values()
            port, unix = listen_port(v[0]) if v else (80, False)
            if unix:
                notes.append(f"line {d.line}: listen {v[0]}: unix socket dropped")
                continue
            params = merged.setdefault(listen_map[port], [])
            for p in v[1:]:
                p = {"default": "default_server", "spdy": "http2"}.get(p, p)
                if p in LISTEN_KEEP and p not in params:
                    params.append(p)
            if http2_on and "ssl" in params and "http2" not in params:
                params.append("http2")
        rest = [d for d in srv.block if d.name != "listen" and not (d.name == "http2" and d.args)]
        if http2_on:
            notes.append("'http2 on' (nginx 1.25) turned into the http2 listen flag")
        new = [Directive("listen", [f"127.0.0.1:{p}"] + params, None, srv.line)
               for p, params in merged.items()]
        srv.block = new + rest
        needs_cert = any("ssl" in ps for ps in merged.values()) or has_ssl_on
        has_cert = any(d.name == "ssl_certificate" for d in srv.block) or (
            http is not None and any(d.name == "ssl_certificate" for d in http.block))
        if needs_cert and not has_cert:
            notes.append("ssl listen without ssl_certificate: the generated one added")
            srv.block += [Directive("ssl_certificate", [quote(cert)]),
                          Directive("ssl_certificate_key", [quote(key)])]

    variable_passes = _variable_passes(main, upstreams, upstream_names, notes)
    main[:] = fix_list(main, "main")
    if for_nginx:
        main[0:0] = [Directive("load_module", [quote(m)]) for m in debian_modules()]
    if http is not None and for_nginx:
        temp = os.path.join(tmpdir, "temp")
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            http.block.insert(0, Directive(f"{name}_temp_path", [quote(os.path.join(temp, name))]))
        # a site file lived in Debian's nginx.conf, which gives every site the MIME table
        if os.path.exists("/etc/nginx/mime.types") and not any(d.name == "types" for d, _ in walk(http.block)):
            if not any(d.name == "default_type" for d in http.block):
                http.block.insert(0, Directive("default_type", ["application/octet-stream"]))
            http.block.insert(0, Directive("include", [quote("/etc/nginx/mime.types")]))
        if not any(d.name == "access_log" for d in http.block):
            http.block.insert(0, Directive("access_log", [quote(os.path.join(logs, "access.log"))]))
    _dedupe_default_servers(main)


def debian_modules():
    """Absolute paths of the dynamic modules Debian's nginx.conf would load (modules-enabled).

    Their `load_module modules/x.so` is relative to nginx's compiled prefix, which
    `-p tmpdir` replaces: so the paths are resolved here.
    """
    out = []
    if not os.path.isdir(MODULES_ENABLED):
        return out
    for name in sorted(os.listdir(MODULES_ENABLED)):
        try:
            with open(os.path.join(MODULES_ENABLED, name), encoding="utf-8") as fh:
                text = fh.read()
        except OSError:
            continue
        for rel in re.findall(r"^\s*load_module\s+([^;\s]+)\s*;", text, re.M):
            rel = rel.strip("\"'")
            for base in ("/usr/share/nginx", "/usr/lib/nginx", "/etc/nginx"):
                path = rel if os.path.isabs(rel) else os.path.join(base, rel)
                if os.path.isfile(path):
                    out.append(path)
                    break
    return out


def _dedupe_default_servers(main):
    """After v4/v6 and address collapse, keep one default_server per port."""
    seen = set()
    for srv in servers(main):
        for d in srv.block:
            if d.name == "listen" and "default_server" in d.args:
                if d.args[0] in seen:
                    d.args = [a for a in d.args if a != "default_server"]
                seen.add(d.args[0])


def original_ports(main):
    """Every original listen port of the config's http servers, and which are TLS.

    (stream and mail blocks are dropped by rewrite(), so their ports are not here.)
    """
    ports, tls = [], set()
    for srv in servers(main):
        ls = [d for d in srv.block if d.name == "listen"]
        ssl_on = any(d.name == "ssl" and d.values()[:1] == ["on"] for d in srv.block)
        if not ls:
            ports.append(80)
        for d in ls:
            v = d.values()
            port, unix = listen_port(v[0]) if v else (80, False)
            if unix:
                continue
            ports.append(port)
            if "ssl" in v[1:] or ssl_on:
                tls.add(port)
    return list(dict.fromkeys(ports)), tls


ENV_REF = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def envsubst(text, notes):
    """An envsubst template (the nginx Docker image's): every upper-case
    ${NAME} is filled in before either side sees the file, as the container
    does before nginx starts — a URL where it is a proxy_pass target (itself
    or through `set`), else a host name. greenlight's own reading of the
    environment ({$NAME}) is tested in tests/env_refs.rs."""
    names = sorted(set(ENV_REF.findall(text)))
    if not names:
        return text
    urls = set()
    for n in names:
        ref = re.escape("${" + n + "}")
        if re.search(r"proxy_pass\s+" + ref, text) or re.search(r"\bset\s+\$\w+\s+" + ref, text):
            urls.add(n)
    def value(n):
        host = n.lower().replace("_", "-") + ".env.test"
        return "http://" + host if n in urls else host
    notes.append("an envsubst template: " + ", ".join(f"${{{n}}}={value(n)}" for n in names))
    return ENV_REF.sub(lambda m: value(m.group(1)), text)
