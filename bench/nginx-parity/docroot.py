"""Real docroots for the static probes: every absolute `root`/`alias` of a
config is pointed at the same path under the run's temporary directory
(the same rewrite for nginx's config and greenlight's import), and that
directory is filled with the files the static probes ask for.

Part of bench/nginx-parity (README.md there: "Static files"). Without
this, a corpus root names a directory that does not exist here and both
sides answer 404 (or nginx 500), which compares nothing.
"""
import os

import mp4gen
from nginxconf import quote, unquote, servers

# What every served directory holds (names no real site uses).
TEXT = b"parity text file\n" * 64  # > 1 KiB: compressible, rangeable
FILES = {
    "index.html": b"<!doctype html><title>parity</title><p>index</p>\n",
    "parity.txt": TEXT,
    "parity-sub/index.html": b"<p>sub index</p>\n",
    "parity-dir/a.txt": b"a\n",
    "parity-dir/b.html": b"<p>b</p>\n",
}
# Every file's modification time: fixed, so Last-Modified and ETag do not
# depend on when the run wrote them.
MTIME = 1_700_000_000
# The body of every `error_page` target a config names (`/50x.html`): each
# served directory holds one, so both sides can send the page.
PAGE = b"<!doctype html><title>parity error</title><p>error page</p>\n"
# The error_page URIs of the config being rewritten (set by rewrite_roots).
_pages = []


def _error_pages(block):
    """The `/uri` targets of every `error_page` in block, nested included."""
    out = []
    for d in block or []:
        if d.name == "error_page" and d.args:
            target = unquote(d.args[-1])
            if target.startswith("/") and "$" not in target:
                out.append(target)
        out.extend(_error_pages(d.block))
    return out


def _location(d):
    """(modifier, pattern) of a location directive."""
    v = d.values()
    if len(v) == 2:
        return v[0], v[1]
    p = v[0] if v else ""
    for m in ("~*", "^~", "=", "~"):
        if p.startswith(m) and len(p) > len(m) and not p.startswith("/"):
            return m, p[len(m):]
    return "", p


class Mp4Prefix(str):
    """A URL prefix served by a location with `mp4`: probes.py adds the
    `?start=`/`&end=` probes there."""


def _fill(base, exact_file=False, mp4=False):
    if "$" in base:
        return  # a variable part: nothing known to fill
    if exact_file:
        os.makedirs(os.path.dirname(base), exist_ok=True)
        with open(base, "wb") as fh:
            fh.write(TEXT)
        os.utime(base, (MTIME, MTIME))
        return
    pages = {page.lstrip("/"): PAGE for page in _pages}
    for rel, data in {**pages, **FILES, **(mp4gen.FILES if mp4 else {})}.items():
        p = os.path.join(base, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as fh:
            fh.write(data)
        os.utime(p, (MTIME, MTIME))


def rewrite_roots(main, docroot, notes):
    """Points absolute root/alias paths of `main` under `docroot` (in place)
    and fills them. Returns {id(server directive): [URL prefixes served as
    files]} for probes.static_paths."""
    served = {}
    count = 0
    _pages[:] = list(dict.fromkeys(_error_pages(main)))
    for srv in servers(main):
        prefixes = []
        server_root = None
        for d in srv.block:
            if d.name == "root" and d.args:
                server_root = _point(d, docroot)
                count += 1

        def visit(block, inherited_root):
            nonlocal count
            for d in block:
                if d.name != "location" or d.block is None:
                    continue
                mod, pat = _location(d)
                own_root = None
                alias = None
                for c in d.block:
                    if c.name == "root" and c.args:
                        own_root = _point(c, docroot)
                        count += 1
                    elif c.name == "alias" and c.args:
                        alias = _point(c, docroot)
                        count += 1
                root = own_root or inherited_root
                proxies = any(c.name.endswith("_pass") or c.name == "return" for c in d.block)
                literal = mod in ("", "^~") and pat.startswith("/")
                mp4 = any(c.name == "mp4" for c in d.block)
                prefix = Mp4Prefix(pat) if mp4 else pat
                if alias and mod == "=" and not alias.endswith("/"):
                    _fill(alias, exact_file=True)
                elif alias and literal:
                    _fill(alias, mp4=mp4)
                    if pat.endswith("/") and not proxies:
                        prefixes.append(prefix)
                elif root:
                    if literal:
                        _fill(root.rstrip("/") + (pat if pat.endswith("/") else os.path.dirname(pat) + "/"), mp4=mp4)
                        if pat.endswith("/") and not proxies:
                            prefixes.append(prefix)
                    _fill(root)
                visit(d.block, root)

        visit(srv.block, server_root)
        if server_root:
            _fill(server_root)
            if not any(p == "/" for p in prefixes) and _serves_slash(srv):
                prefixes.insert(0, "/")
        served[id(srv)] = list(dict.fromkeys(prefixes))
    if count:
        notes.append(f"{count} root/alias path(s) pointed at a generated docroot")
    return served


def _serves_slash(srv):
    """The server's `/` is served as files: no `location /` that proxies."""
    for d in srv.block:
        if d.name == "location" and d.block is not None and _location(d) in (("", "/"), ("^~", "/")):
            return not any(c.name.endswith("_pass") or c.name == "return" for c in d.block)
    return not any(d.name == "return" for d in srv.block)


def _point(d, docroot):
    """Rewrites directive d's path under docroot; returns the new path."""
    old = unquote(d.args[0])
    if not old.startswith("/"):
        return None  # relative to nginx's prefix: left as is
    new = os.path.join(docroot, old.lstrip("/"))
    if old.endswith("/") and not new.endswith("/"):
        new += "/"
    d.args[0] = quote(new)
    return new
