"""nginx configuration text: parse, rewrite for a loopback run, serialise.

Part of bench/nginx-parity (see README.md there). The parser follows nginx's
own tokenizer (ngx_conf_read_token) closely enough for real configs: words,
single/double quoted strings (kept raw, quotes included, so that re-serialising
changes nothing we did not touch), `${var}` inside words, `#` comments at the
start of a token, and `;`, `{`, `}`. python3 stdlib only.
"""
import glob
import os
import re


class ParseError(Exception):
    """The text is not nginx syntax (or uses a block this parser cannot read)."""


class Directive:
    """One directive: name, raw argument tokens, optional block of children."""

    __slots__ = ("name", "args", "block", "line")

    def __init__(self, name, args, block=None, line=0):
        self.name = name
        self.args = args  # raw tokens (quotes kept)
        self.block = block  # None, or a list of Directive
        self.line = line

    def values(self):
        """The arguments with quotes and escapes removed."""
        return [unquote(a) for a in self.args]

    def __repr__(self):
        return f"Directive({self.name!r}, {self.args!r}, block={self.block is not None})"


def unquote(tok):
    """The value of one raw token, as nginx sees it."""
    if len(tok) >= 2 and tok[0] == tok[-1] and tok[0] in "\"'":
        body = tok[1:-1]
    else:
        body = tok
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            n = body[i + 1]
            out.append({"t": "\t", "n": "\n", "r": "\r"}.get(n, n if n in "\"'\\" else "\\" + n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def quote(value):
    """A raw token for `value` (quoted only when it needs to be)."""
    if value and re.fullmatch(r"[A-Za-z0-9_./:\[\]*=@%+,$-]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def tokenize(text):
    """Yields (token, line, kind) with kind 'word' | ';' | '{' | '}'."""
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c in " \t\r":
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in ";{}":
            yield c, line, c
            i += 1
        elif c in "\"'":
            start, start_line = i, line
            i += 1
            while i < n and text[i] != c:
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n":
                    line += 1
                i += 1
            if i >= n:
                raise ParseError(f"line {start_line}: unterminated quoted string")
            i += 1
            yield text[start:i], start_line, "word"
        else:
            start = i
            var = False
            while i < n:
                ch = text[i]
                if ch == "{" and var:
                    # `${name}`: the brace belongs to the word
                    j = text.find("}", i)
                    if j < 0:
                        raise ParseError(f"line {line}: unterminated ${{")
                    i = j + 1
                    var = False
                    continue
                var = ch == "$"
                if ch == "\\":
                    i += 2
                    continue
                if ch in " \t\r\n;{":
                    break
                i += 1
            yield text[start:i], line, "word"


def parse(text):
    """The directives of `text` as a list of Directive (blocks nested)."""
    stack = [[]]
    words, first_line = [], 0
    for tok, line, kind in tokenize(text):
        if kind == "word":
            if not words:
                first_line = line
            words.append(tok)
        elif kind == ";":
            if not words:
                continue  # a stray ';' is harmless here
            stack[-1].append(Directive(unquote(words[0]), words[1:], None, first_line))
            words = []
        elif kind == "{":
            if not words:
                raise ParseError(f"line {line}: block without a directive name")
            d = Directive(unquote(words[0]), words[1:], [], first_line)
            if d.name.endswith("_by_lua_block") or d.name.endswith("_lua_block"):
                raise ParseError(f"line {line}: {d.name}: Lua blocks are not parsed by the harness")
            stack[-1].append(d)
            stack.append(d.block)
            words = []
        else:  # '}'
            if words:
                raise ParseError(f"line {line}: directive '{words[0]}' has no ';'")
            if len(stack) == 1:
                raise ParseError(f"line {line}: unexpected '}}'")
            stack.pop()
    if words:
        raise ParseError(f"directive '{words[0]}' has no ';' at end of file")
    if len(stack) != 1:
        raise ParseError("unexpected end of file: a block is not closed")
    return stack[0]


def serialise(directives, indent=0):
    """nginx text for a list of Directive."""
    pad = "    " * indent
    out = []
    for d in directives:
        head = " ".join([quote(d.name)] + d.args)
        if d.block is None:
            out.append(f"{pad}{head};\n")
        else:
            out.append(f"{pad}{head} {{\n")
            out.append(serialise(d.block, indent + 1))
            out.append(f"{pad}}}\n")
    return "".join(out)


def walk(directives, path=()):
    """Yields (directive, parents) depth first, parents as a tuple of Directive."""
    for d in directives:
        yield d, path
        if d.block is not None:
            yield from walk(d.block, path + (d,))


# Debian's parameter files: an include of one of these that is not found next
# to the config file is taken from /etc/nginx (as on a Debian server).
DEBIAN_PARAM_FILES = {
    "mime.types", "proxy_params", "fastcgi_params", "fastcgi.conf", "uwsgi_params",
    "scgi_params", "koi-utf", "koi-win", "win-utf", "snippets/fastcgi-php.conf",
    "snippets/snakeoil.conf",
}


def inline_includes(directives, base_dir, notes, depth=0):
    """Replaces every `include` by the directives of the files it names.

    Relative names are looked up next to the config file; Debian's parameter
    files (mime.types, proxy_params, ...) fall back to /etc/nginx. Anything
    else that is missing is dropped with a note: the harness runs one
    self-contained file, and nginx and the importer both see exactly it.
    """
    out = []
    for d in directives:
        if d.block is not None:
            d.block = inline_includes(d.block, base_dir, notes, depth)
        if d.name != "include" or not d.args:
            out.append(d)
            continue
        name = unquote(d.args[0])
        rel = name[len("/etc/nginx/"):] if name.startswith("/etc/nginx/") else name
        # an absolute path is never read (it would pull in this machine's own
        # /etc/nginx sites), except Debian's parameter files
        candidates = [] if os.path.isabs(name) else [os.path.join(base_dir, name)]
        if rel in DEBIAN_PARAM_FILES:
            candidates.append(os.path.join("/etc/nginx", rel))
        files = []
        for cand in candidates:
            if any(ch in cand for ch in "*?["):
                files = sorted(glob.glob(cand))
            elif os.path.isfile(cand):
                files = [cand]
            if files:
                break
        if not files:
            notes.append(f"line {d.line}: include {name}: not available here, dropped")
            continue
        if depth > 8:
            raise ParseError(f"line {d.line}: includes nested too deep")
        for f in files:
            with open(f, encoding="utf-8", errors="replace") as fh:
                sub = parse(fh.read())
            out.extend(inline_includes(sub, os.path.dirname(f), notes, depth + 1))
    return out


MAIN_BLOCKS = {"http", "events", "stream", "mail"}


def as_main(directives):
    """A full nginx.conf: a site fragment is wrapped in `events {}` + `http {}`."""
    if any(d.name in MAIN_BLOCKS for d in directives):
        if not any(d.name == "events" for d in directives):
            directives.insert(0, Directive("events", [], []))
        return directives, False
    if any(d.name == "location" for d in directives):
        # a fragment of locations (meant to be included in a server): give it one
        directives = [Directive("server", [], directives)]
    return [Directive("events", [], []), Directive("http", [], directives)], True


def http_block(main):
    """The `http` block of a main config (None when there is none)."""
    for d in main:
        if d.name == "http":
            return d
    return None


def servers(main):
    """Every `server` block under `http`, in file order."""
    h = http_block(main)
    if h is None:
        return []
    return [d for d in h.block if d.name == "server" and d.block is not None]


def locations(block):
    """Every location of a server (nested ones too): list of (modifier, pattern)."""
    out = []
    for d, _ in walk(block):
        if d.name != "location" or d.block is None:
            continue
        v = d.values()
        if len(v) == 1:
            pat = v[0]
            # "location ~^/x" and "location =/x" (no space) are nginx syntax too
            for m in ("~*", "^~", "=", "~"):
                if pat.startswith(m) and len(pat) > len(m) and not pat.startswith("/"):
                    out.append((m, pat[len(m):]))
                    break
            else:
                out.append(("", pat))
        elif len(v) >= 2:
            out.append((v[0], v[1]))
    return out


def server_names(server):
    """The server_name values of a server block."""
    names = []
    for d in server.block:
        if d.name == "server_name":
            names.extend(d.values())
    return names
