//! The importer's one table: what every nginx directive becomes in
//! greenlight. Each [`Entry`] names directives (a trailing `*` is a name
//! prefix), what they map to, and how: a setting, a route step, a route
//! terminal, a note (built in or not needed) or a warning (behaviour lost).
//!
//! The converter takes the text of notes and warnings from here
//! ([`lookup`] through `directives::explain`), and the README's importer
//! table is generated from it ([`markdown`]; a unit test fails when the two
//! disagree, `UPDATE_README=1` rewrites the README part). Directives the
//! converter handles in code (settings, steps, terminals) are listed so the
//! README says what they become; `table_tests` checks that each name the
//! converter reports goes through the same kind.

/// How a directive is carried over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Becomes a greenlight key (listener, site, upstream, limits).
    Setting,
    /// Becomes a step of a route plan (headers, rewrites, path).
    Step,
    /// Becomes what a route does in the end (upstream, redirect, respond).
    Terminal,
    /// Built into greenlight or not needed: an informational note.
    Note,
    /// Not carried over: a warning that names the behaviour lost.
    Warning,
}

#[cfg(test)]
impl Kind {
    /// The word shown in the README table.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Setting => "setting",
            Kind::Step => "step",
            Kind::Terminal => "terminal",
            Kind::Note => "note",
            Kind::Warning => "warning",
        }
    }
}

/// One row: the directives, what they become, and why.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    /// Directive names; `name*` matches every name starting with `name`.
    pub names: &'static [&'static str],
    /// How they are carried over.
    pub kind: Kind,
    /// What greenlight does instead (README column; the reason in messages).
    pub text: &'static str,
}

const fn e(names: &'static [&'static str], kind: Kind, text: &'static str) -> Entry {
    Entry { names, kind, text }
}

use Kind::{Note, Setting, Step, Terminal, Warning};

/// Every directive the importer knows, in README order.
pub(crate) const TABLE: &[Entry] = &[
    // Structure and listeners.
    e(
        &["http", "server"],
        Setting,
        "`sites`: one site per server block, named after its first host name; a file of `location` blocks without a server (an include fragment) becomes one catch-all site (note); a TLS server that no plain-HTTP block names gets `plain_http: default` (nginx answered its plain requests with the plain port's default server), or `not_found` when that server is certbot's 404",
    ),
    e(
        &["include"],
        Setting,
        "expanded in place (globs sorted like nginx; cycles are an error). A missing file is a warning, except certbot's `options-ssl-nginx.conf` (TLS settings rustls does not need: note), Debian's `proxy_params` (its four headers are applied) and `mime.types` (note)",
    ),
    e(
        &["listen"],
        Setting,
        "`listeners` (deduplicated; `ssl` → `tls: true`; `proxy_protocol` → `proxy_protocol: true`; `default_server` → the site's `default: true` (`https`/`http` when the plain and TLS ports' defaults differ); when blocks name one host on different addresses, or two ports of a kind have different default servers, every site gets `listeners:` (its block's addresses, less those where an earlier block names the host) and each listener nginx's default server (the `default_server` block, else the first listening there); `localhost` → `127.0.0.1`; `[::]:P ipv6only=off` → `[::]:P` and `0.0.0.0:P`; socket tuning such as `reuseport`, `backlog=` is a note; a non-IP address becomes `EDIT-ME` with an `# EDIT:` comment)",
    ),
    e(
        &["server_name"],
        Setting,
        "`hosts`: exact names, `*.a.com`, `www.a.*`, `~regex` as written; `.a.com` → `a.com` + `*.a.com`; `_` or no name → `default: true` (without hosts); an envsubst template's `${NAME}` (upper case, also inside `~regex` names) → `{$NAME}`, read from greenlight's environment; names with other variables are a warning",
    ),
    e(
        &["ssl_certificate", "ssl_certificate_key"],
        Setting,
        "`tls: {cert, key}` (server or http level; envsubst `${NAME}` in a path → `{$NAME}`); with `--acme EMAIL` a Let's Encrypt certificate becomes `tls: acme`; none (nginx refuses to start) → `tls: acme` with a note when every name is a public DNS name (plus an `acme:` section, `challenge: tls-alpn-01` when there is no plain listener); a catch-all TLS server (no `server_name`) → `tls: {acme: [names]}` with the names plain-HTTP blocks redirect to https and no TLS block names; else `tls: self_signed` + warning",
    ),
    e(
        &["ssl"],
        Setting,
        "`ssl on` (obsolete): the server's listeners become TLS listeners (note)",
    ),
    e(
        &["http2"],
        Note,
        "greenlight offers HTTP/2 on TLS listeners through ALPN",
    ),
    e(
        &["underscores_in_headers"],
        Setting,
        "`underscores_in_headers: true` on the site",
    ),
    e(
        &["client_max_body_size"],
        Setting,
        "`max_body_size` on the site (absent: nginx's `1m`, with a comment); a different value in a location becomes the route's `max_body_size`",
    ),
    e(
        &[
            "proxy_connect_timeout",
            "proxy_read_timeout",
            "proxy_send_timeout",
        ],
        Setting,
        "`connect_timeout`, `read_timeout`, `write_timeout` on the upstream (locations with other timeouts get their own upstream)",
    ),
    e(
        &[
            "keepalive_timeout",
            "keepalive_requests",
            "client_header_timeout",
            "client_body_timeout",
            "send_timeout",
            "large_client_header_buffers",
            "http2_max_concurrent_streams",
        ],
        Setting,
        "the global `limits` (`keepalive_timeout`, `keepalive_requests`, `header_timeout`, `body_timeout`, `send_timeout`, `max_uri_length` + `max_header_size`, `h2_max_concurrent_streams`); several values keep the largest, each other value is a warning — except `keepalive_timeout`: the global is what blocks without their own inherit, and a server block's own value (`0` included) becomes its site's `keepalive_timeout`",
    ),
    e(
        &["set_real_ip_from", "real_ip_header", "real_ip_recursive"],
        Setting,
        "`trusted_proxies` and `client_ip_from` (http level: top level; server level: the site); greenlight always resolves recursively (`real_ip_recursive off`: a note); `real_ip_header proxy_protocol` → `trusted_proxies: []` on a `proxy_protocol` listener's site",
    ),
    e(
        &["access_log"],
        Setting,
        "`access_log off` at http level → `access_log: off`; a file → note: greenlight writes one access log (`access_log:` key, stdout by default, nginx's combined format)",
    ),
    // Upstreams.
    e(
        &["upstream"],
        Setting,
        "`upstreams.<name>`: `server` lines → pool `main` (`unix:/path` stays a unix socket server; `weight=` → `weight`, `backup` → `backup: true`, `down` left out, `max_fails`/`fail_timeout` → passive health: the values most servers share on the upstream, the others on their servers)",
    ),
    e(
        &["least_conn", "ip_hash", "hash"],
        Setting,
        "`balance: least_conn`, `ip_hash`, `{hash: TEMPLATE}` (`consistent` is how greenlight hashes)",
    ),
    e(
        &["keepalive", "zone"],
        Note,
        "inside `upstream`: greenlight keeps upstream connections alive itself and has no shared zones",
    ),
    e(
        &[
            "proxy_ssl_server_name",
            "proxy_ssl_name",
            "proxy_ssl_verify",
            "proxy_ssl_trusted_certificate",
        ],
        Setting,
        "on an `https://` upstream: `sni` (`proxy_ssl_name`; `proxy_ssl_server_name on` is greenlight's default), `verify: false` (`proxy_ssl_verify off`), `ca` (`proxy_ssl_trusted_certificate`). nginx does not verify upstream certificates unless told to; greenlight does (a name or CA problem shows as 502), except for an upstream that is an IP address, `localhost` or a one-label name without `proxy_ssl_verify`/`ca`: that gets `verify: false` like nginx, with a note",
    ),
    e(
        &[
            "proxy_ssl_protocols",
            "proxy_ssl_ciphers",
            "proxy_ssl_session_reuse",
            "proxy_ssl_verify_depth",
        ],
        Note,
        "rustls chooses protocols and suites for upstream TLS and resumes sessions itself",
    ),
    e(
        &[
            "proxy_ssl_certificate",
            "proxy_ssl_certificate_key",
            "proxy_ssl_password_file",
            "proxy_ssl_crl",
        ],
        Warning,
        "client certificates to upstreams (mutual TLS) are not supported: the upstream no longer receives one",
    ),
    // Routes.
    e(
        &["location"],
        Setting,
        "a route: `/p` prefix, `= /p` exact, `^~ /p`, `~ re`, `~* re` in `path:`; nested locations become their own routes; `location @name` becomes a route `path: \"@name\"` that a files route's `try_files … @name` hands requests to; certbot's webroot (`location /.well-known/acme-challenge/ { root …; }`) in a port-80 block that redirects to https becomes a `scheme: http` files route on the TLS site (with `--acme` it is a note: greenlight answers the challenges itself)",
    ),
    e(
        &["proxy_pass"],
        Terminal,
        "`upstream:` (an `upstream` block by name, else `host:port`; `http://unix:/x.sock[:/uri]` → a `unix:/x.sock` server, `Host: localhost` as nginx sends); a URI part → `upstream_path` (replaces the location prefix, `/` strips it); `https://` → upstream `tls: true`; `$var` from `set` is resolved at import; an envsubst `${NAME}` URL → an upstream whose server is `{$NAME}` (a URL read at load); without `proxy_set_header Host` the route sets `Host` to the `proxy_pass` host, like nginx (`$proxy_host`)",
    ),
    e(
        &["return"],
        Terminal,
        "3xx with a URL → `redirect: {to, status}`; other codes → `respond: {status, body}`; a plain-HTTP server that only redirects to `https://$host$request_uri` → `plain_http: redirect NNN` on the TLS site, with nginx's status (`redirect` alone is 308); to one fixed host (`https://example.com$request_uri`, or `$server_name`) → `plain_http: {redirect: NNN, to: URL}`. When port 80's default server is another block than the TLS one (e.g. certbot's, answering unknown hosts 404), the TLS default becomes `default: https` (and that block's site `default: http`)",
    ),
    e(
        &["empty_gif"],
        Terminal,
        "`respond: {status: 200, content_type: image/gif, body_base64: …}`: the same 43-byte transparent GIF, sent from memory (HEAD gets the headers only), with `methods: [GET, HEAD]` (other methods get 405, as from nginx)",
    ),
    e(
        &["rewrite"],
        Step,
        "`rewrite: [{from, to, flag}]` (`last`, `break`, `redirect`, `permanent`); a URL replacement redirects; without a flag nginx goes on to the next rewrite while greenlight stops at the first match (`last`; a warning when more rules follow); a server-level `rewrite ^ https://$host$request_uri? permanent` is the https redirect (`plain_http: redirect`); other server-level rewrites run first on every proxied route and also get a regex route of their own (`break` there becomes `last`)",
    ),
    e(
        &["set"],
        Step,
        "`set $v VALUE`: `$v` is replaced by `VALUE` where it is used (values with unknown variables are a warning)",
    ),
    e(
        &["if"],
        Step,
        "`if ($host = name)` / `if ($host ~ re)` `{ return 301 https://$host$request_uri; }` (certbot) and `if ($scheme = http) { return 301 https://… }` → `plain_http: redirect` (names a `~ re` does not match get nginx's 404: `plain_http: not_found`); `if ($host = name) { return 3xx URL; }` in a server → a site of its own for that name whose every path redirects; `if ($uri ~ re) { return 3xx URL; }` (also `$request_uri`) → a redirecting `rewrite`; `if ($request_method = M) { add_header …; return N; }` in a location (the CORS preflight) → a route of that location with `methods: [M]` and the `if`'s own headers (its `return`, else the location's upstream); any other `if (CONDITION) { return …; }` → `checks: [{if: CONDITION, redirect|respond}]` (a server's on the site, a location's on its route); an `if` that does more than `return` (`set`, `rewrite`, `proxy_pass`), file tests (`-f`, `-d`, `-e`) are a warning; look-around and back-references in an `if` regex carry over (checks run them bounded)",
    ),
    e(
        &["root", "alias", "index", "try_files"],
        Step,
        "a server `root` with no `location /` also serves every path no location takes (nginx's static handler): a `/` files route; a location with no `proxy_pass`, `return` or other content handler serves files: `files: {root | alias, index, try_files}` from the `root` in force or its `alias` (prefix locations; in a regex location an `alias` with the location's captures, `alias /home/$1/public_html$2`, becomes `files: {alias: TEMPLATE}` on the regex route — any other variable, or `try_files` beside it, is a warning); `try_files` converts when its last entry is a path, `=CODE` or a named location `@name` (which becomes a route `path: \"@name\"`, reached only from there; its fallback is dropped with a warning when the named location does not convert); a location with no known root (nginx's compiled-in default) stays a warning, and a server that runs scripts (`fastcgi_pass`, `uwsgi_pass`, `scgi_pass`) gets no `files:` routes, so a script's source is never sent as a file",
    ),
    e(
        &["autoindex", "expires"],
        Step,
        "`autoindex on` → `files: {autoindex: true}` (nginx's HTML listing; dotfiles and symlinks out of the root are not listed); `expires TIME|max|epoch|modified TIME` → the route's `expires:` on a files location (`off` needs nothing); on a location that proxies or answers (`return`), the route's own `expires:` (nginx stamps those answers too: 2xx and redirects); `@time` of day is a warning",
    ),
    e(
        &[
            "mp4",
            "mp4_buffer_size",
            "mp4_max_buffer_size",
            "mp4_start_key_frame",
        ],
        Step,
        "`mp4` in a location that serves files → `files: {mp4: true}`: MP4 pseudo-streaming, `?start=SECONDS` and `&end=SECONDS` answer the part of the video between them, cut as nginx's module cuts it (the same bytes); `mp4_buffer_size`, `mp4_max_buffer_size` and `mp4_start_key_frame on` in force → `mp4: {buffer_size, max_buffer_size, start_key_frame}`",
    ),
    e(
        &[
            "autoindex_exact_size",
            "autoindex_format",
            "autoindex_localtime",
        ],
        Note,
        "greenlight's listings are HTML with exact sizes and UTC times",
    ),
    e(
        &["allow", "deny", "satisfy"],
        Step,
        "`access: {ip: [{allow: NET}, {deny: all}], satisfy: any}` on each route, in nginx's first-match order on the real client IP, a level with its own list dropping the outer one; a location with `deny all` and nothing else to answer becomes `respond: {status: 403}`; host bits past a prefix are cleared (nginx ignores them)",
    ),
    e(
        &["auth_basic", "auth_basic_user_file"],
        Step,
        "`access: {basic_auth: {realm, users_file}}` (`auth_basic off` leaves it out); the file's path is kept and greenlight reads it at load (bcrypt, apr1, `{SHA}`, SHA-crypt, MD5-crypt): a file not on the importing machine is a note to copy it",
    ),
    e(
        &["auth_request"],
        Step,
        "`access: {forward_auth: {url}}` when the `internal` location answering the path proxies to an `http(s)://` URL with a literal host (that location is then no route); variables after the host carry over (`/grant$request_uri`: greenlight renders them per request); a variable host or an upstream block there is a warning to write `forward_auth: {upstream, path}` by hand",
    ),
    e(
        &["map"],
        Step,
        "`maps: {NAME: {source, values, default}}` (exact keys, `~re` / `~*re` in order, values with variables and the key's regex groups); `map $http_upgrade $connection_upgrade` is built in (WebSocket upgrades, note); `hostnames` and `include` inside a map are a warning",
    ),
    e(
        &["proxy_set_header"],
        Step,
        "`request_headers.set` (`\"\"` → `remove`); `Host $http_host`, `X-Forwarded-For`, `X-Forwarded-Proto $scheme`, `X-Forwarded-Host $http_host`, `Upgrade`, `Connection` are built in (note). nginx's inheritance (a level with its own list drops the outer one) is computed at import",
    ),
    e(
        &["add_header"],
        Step,
        "`response_headers.add` (`always` → `{value, always: true}`); nginx's inheritance is computed at import and a note says where a location dropped the server's headers; in a port-80 block that only redirects to https, `plain_http: {redirect, response_headers: {add}}` on the TLS site (HSTS there is a note: browsers ignore it over plain HTTP)",
    ),
    e(&["proxy_hide_header"], Step, "`response_headers.remove`"),
    e(
        &["more_set_headers"],
        Step,
        "`response_headers.set` (headers-more; the name ends at `:` or a space, as headers-more reads it; `-s`/`-t` filters are a warning); in a port-80 block that only redirects, `plain_http: {…, response_headers: {set}}`",
    ),
    e(
        &["proxy_request_buffering"],
        Setting,
        "`request_buffering: on/off` on the route",
    ),
    e(
        &[
            "proxy_buffering",
            "proxy_buffers",
            "proxy_buffer_size",
            "proxy_busy_buffers_size",
            "proxy_max_temp_file_size",
            "proxy_temp_file_write_size",
            "proxy_temp_path",
            "client_body_buffer_size",
            "client_body_temp_path",
            "output_buffers",
            "postpone_output",
            "chunked_transfer_encoding",
        ],
        Note,
        "greenlight streams responses as they arrive (what `proxy_buffering off` asks for) and sizes its buffers itself; request bodies follow `request_buffering` and `limits.body_buffer_size`",
    ),
    e(
        &["proxy_http_version"],
        Note,
        "greenlight talks HTTP/1.1 to upstreams (keep-alive and WebSocket upgrades work)",
    ),
    e(
        &["proxy_redirect"],
        Step,
        "`rewrite_location:` on the route: `FROM TO` → `{from, to}` (`~regex`/`~*regex` kept, variables as in templates), `default` → the `proxy_pass` URL → the location prefix, written out (also nginx's implicit default, where the route sends the `proxy_pass` host as `Host`), `off` → no rules; inherited like nginx (a level with its own list replaces the outer one)",
    ),
    e(
        &["proxy_pass_request_headers", "proxy_pass_request_body"],
        Note,
        "`on` (the default) is what greenlight does; `off` is a warning",
    ),
    e(
        &["proxy_cache_bypass"],
        Note,
        "`$http_upgrade`: greenlight does not cache, upgrades go straight to the upstream",
    ),
    e(
        &["server_tokens"],
        Note,
        "greenlight does not advertise a version in its own answers",
    ),
    e(
        &[
            "error_log",
            "log_format",
            "log_not_found",
            "log_subrequest",
            "open_log_file_cache",
            "rewrite_log",
        ],
        Note,
        "greenlight logs to stderr (the journal under systemd) and writes its access log in nginx's combined format or JSON",
    ),
    e(
        &[
            "absolute_redirect",
            "server_name_in_redirect",
            "port_in_redirect",
        ],
        Note,
        "greenlight makes relative `Location` values of its own redirects absolute with the request's host",
    ),
    // Built in, TLS.
    e(
        &["ssl_dhparam"],
        Note,
        "rustls negotiates ECDHE key exchange with built-in curves, so a DH parameter file is never used",
    ),
    e(
        &[
            "ssl_ciphers",
            "ssl_prefer_server_ciphers",
            "ssl_ecdh_curve",
            "ssl_conf_command",
        ],
        Note,
        "rustls chooses modern cipher suites and curves itself",
    ),
    e(
        &["ssl_protocols"],
        Note,
        "rustls speaks TLS 1.2 and TLS 1.3 only",
    ),
    e(
        &[
            "ssl_session_cache",
            "ssl_session_timeout",
            "ssl_session_tickets",
            "ssl_session_ticket_key",
        ],
        Note,
        "TLS session resumption is handled by rustls",
    ),
    e(
        &["ssl_stapling*", "ssl_ocsp*"],
        Note,
        "greenlight does not staple OCSP responses, and Let's Encrypt has ended OCSP, so stapling is moot",
    ),
    e(
        &["ssl_trusted_certificate"],
        Note,
        "it only fed OCSP stapling; the chain sent to clients comes from the certificate file (fullchain.pem)",
    ),
    e(
        &["ssl_buffer_size"],
        Note,
        "rustls sizes TLS records itself",
    ),
    // Built in, process and tuning.
    e(
        &[
            "user",
            "worker_*",
            "pid",
            "daemon",
            "master_process",
            "events",
            "multi_accept",
            "use",
            "accept_mutex*",
            "thread_pool",
            "pcre_jit",
            "lock_file",
            "timer_resolution",
            "working_directory",
            "load_module",
            "env",
        ],
        Note,
        "nginx process setting; greenlight runs as one process with its own worker threads (set its user and limits in its service unit)",
    ),
    e(
        &["sendfile*"],
        Note,
        "greenlight always sends `files:` bodies over 16 KiB by sendfile(2) on plain HTTP/1 (at most 2 MiB per call, nginx's `sendfile_max_chunk`); TLS and HTTP/2 answers are copied",
    ),
    e(
        &[
            "tcp_nopush",
            "tcp_nodelay",
            "aio",
            "directio",
            "*_hash_max_size",
            "*_hash_bucket_size",
            "open_file_cache*",
        ],
        Note,
        "nginx-internal tuning with no greenlight equivalent",
    ),
    e(
        &["types", "default_type"],
        Note,
        "file types only matter for files nginx serves itself; greenlight passes the upstream's Content-Type through",
    ),
    e(
        &["resolver", "resolver_timeout"],
        Note,
        "greenlight resolves upstream host names itself when it loads the configuration",
    ),
    e(
        &["http2_push", "http2_push_preload", "spdy_headers_comp"],
        Note,
        "HTTP/2 server push is obsolete (browsers removed it)",
    ),
    e(
        &[
            "http2_recv_buffer_size",
            "http2_chunk_size",
            "http2_body_preread_size",
            "http2_idle_timeout",
            "http2_max_requests",
        ],
        Note,
        "HTTP/2 tuning is handled by greenlight",
    ),
    e(
        &["client_header_buffer_size"],
        Note,
        "greenlight sizes its header buffer itself; its header limits are limits.max_uri_length and max_header_size (converted from large_client_header_buffers)",
    ),
    // Not carried over.
    e(
        &[
            "internal",
            "disable_symlinks",
            "etag",
            "if_modified_since",
            "random_index",
            "flv",
        ],
        Warning,
        "greenlight's `files:` routes have no such setting (they always send ETag and Last-Modified and answer conditional requests, refuse symlinks that leave the root, and `internal` locations are not converted); if a site relies on one, keep those files on a static upstream",
    ),
    e(
        &[
            "gzip",
            "gzip_types",
            "gzip_min_length",
            "gzip_comp_level",
            "gzip_static",
            "brotli",
            "brotli_types",
            "brotli_min_length",
            "brotli_comp_level",
            "brotli_static",
        ],
        Step,
        "`compress: {algorithms, types, min_length, level, precompressed}` per route (written once at site level when every route shares it), each directive inherited on its own as in nginx: `gzip on` → gzip, `brotli on` → br (preferred), `*_types` → `types` with nginx's implicit `text/html`, `*_comp_level` → `level`, `gzip_min_length` → `min_length`, `gzip_static`/`brotli_static` → `precompressed` on `files:` routes (`always` is a warning: siblings go only to clients that accept them)",
    ),
    e(
        &["gzip_vary"],
        Note,
        "greenlight always adds `Vary: Accept-Encoding` to answers it could compress",
    ),
    e(
        &["gzip_proxied"],
        Note,
        "greenlight compresses proxied answers whatever the request's Via header (nginx's default `off` skips requests that came through another proxy); answers with `Cache-Control: no-transform` or a `Content-Encoding` are never compressed",
    ),
    e(
        &["gzip_disable"],
        Note,
        "the browsers it was for (`msie6`) are gone; greenlight compresses for every client that asks",
    ),
    e(
        &["gzip_http_version"],
        Note,
        "greenlight compresses for HTTP/1.1 and HTTP/2 clients, never HTTP/1.0 (nginx's default `1.1`)",
    ),
    e(
        &["gzip_buffers", "brotli_buffers", "brotli_window"],
        Note,
        "greenlight sizes its compression buffers itself",
    ),
    e(
        &["gunzip*", "gzip*", "brotli*"],
        Warning,
        "greenlight does not decompress answers for clients without gzip, nor take this setting; compress in the upstream app if you need it",
    ),
    e(
        &["proxy_cache*", "proxy_no_cache", "proxy_store*"],
        Warning,
        "greenlight does not cache responses; every request reaches the upstream",
    ),
    e(
        &["limit_req_zone", "limit_conn_zone"],
        Setting,
        "top-level `limit_req_zones: {NAME: {key, rate, size}}` / `limit_conn_zones: {NAME: {key}}` (`$binary_remote_addr` is the client address); `sync` is not needed",
    ),
    e(
        &[
            "limit_req",
            "limit_conn",
            "limit_req_status",
            "limit_conn_status",
        ],
        Step,
        "`limit_req: [{zone, burst, nodelay | delay, status}]` and `limit_conn: [{zone, max, status}]` on each route, inherited as nginx does; the status stays nginx's 503 unless `limit_*_status` sets one (greenlight's own default is 429)",
    ),
    e(
        &[
            "limit_req_log_level",
            "limit_conn_log_level",
            "limit_req_dry_run",
            "limit_conn_dry_run",
        ],
        Warning,
        "greenlight logs refused requests at debug level and always enforces its limits (no dry run)",
    ),
    e(
        &["limit_rate*"],
        Warning,
        "bandwidth limits are not available in greenlight; limit in the app or in front of greenlight",
    ),
    e(
        &["fastcgi_*", "uwsgi_*", "scgi_*", "grpc_*", "memcached_*"],
        Warning,
        "greenlight proxies HTTP only; run the application behind an HTTP server and proxy to that",
    ),
    e(
        &[
            "ssl_verify_client",
            "ssl_verify_depth",
            "ssl_client_certificate",
        ],
        Setting,
        "a TLS site's `client_auth: {ca, verify, depth}` (server or http level): `ssl_verify_client on` → `verify: required`, `optional`, `optional_no_ca`; `off` (nginx's default) → note; a missing or untrusted certificate is answered 400 like nginx; `ssl_trusted_certificate` stands in for `ca` when only it is given",
    ),
    e(
        &["ssl_crl"],
        Warning,
        "certificate revocation lists are not checked: a revoked client certificate from the site's CA is accepted; revoke by re-issuing the CA, or check `$ssl_client_serial` in the app",
    ),
    e(
        &[
            "auth_request_set",
            "auth_jwt*",
            "secure_link*",
            "limit_except",
        ],
        Warning,
        "access control is not converted: greenlight lets every client through, so protect these paths in the app",
    ),
    e(
        &[
            "more_clear_headers",
            "add_trailer",
            "proxy_pass_header",
            "proxy_ignore_headers",
            "proxy_set_body",
            "proxy_cookie_*",
            "sub_filter*",
        ],
        Warning,
        "greenlight does not rewrite these headers or bodies; do it in the upstream app",
    ),
    e(
        &[
            "break",
            "geo",
            "split_clients",
            "uninitialized_variable_warn",
        ],
        Warning,
        "greenlight has no such variables or rewrite-phase logic; move the logic into the app",
    ),
    e(
        &["error_page", "proxy_intercept_errors"],
        Step,
        "`error_pages: {CODE: FILE}` on each route (`=200` → `{file, status: 200}`), the file resolved from the location that serves the URI (`location = /50x.html { root …; }`) or the `root` in force; a URI whose location proxies or answers (not files) → `{uri: PATH}`, answered by the site's routes with the original status (for greenlight's own answers; an upstream's errors get file pages only); `proxy_intercept_errors on` → `intercept_errors: true`; a named location or a URL target is a warning",
    ),
    e(
        &["recursive_error_pages"],
        Warning,
        "greenlight's error pages are files read at load, never a second request",
    ),
    e(
        &["client_body_in_file_only"],
        Warning,
        "greenlight never writes request bodies to files",
    ),
    e(
        &[
            "keepalive_time",
            "keepalive_disable",
            "lingering_close",
            "lingering_time",
            "lingering_timeout",
            "reset_timedout_connection",
        ],
        Warning,
        "greenlight has no setting for this (its client settings are limits.header_timeout, body_timeout, send_timeout, keepalive_timeout and keepalive_requests); its own behaviour applies",
    ),
    e(
        &["proxy_next_upstream"],
        Setting,
        "its `http_NNN` conditions become `retry_statuses: [NNN, …]` on the route (GET/HEAD/PUT/DELETE without a body are retried on the next server); `error`/`timeout`/`invalid_header` are what greenlight does anyway on connect (note); `non_idempotent` is a warning",
    ),
    e(
        &["proxy_next_upstream_tries", "proxy_next_upstream_timeout"],
        Warning,
        "greenlight tries each server of the pool at most once per request, without a separate deadline",
    ),
    e(
        &["random", "sticky", "ntlm"],
        Warning,
        "this balancing method is not available; greenlight balances by round robin, least_conn, ip_hash or hash",
    ),
    e(
        &["stream"],
        Warning,
        "TCP/UDP proxying (the stream module) is not supported by greenlight",
    ),
    e(
        &["mail"],
        Warning,
        "mail proxying is not supported by greenlight",
    ),
    e(
        &["http3", "quic_*"],
        Warning,
        "HTTP/3 (QUIC) is not supported by greenlight yet",
    ),
    e(
        &["stub_status", "status", "vhost_traffic_status*"],
        Warning,
        "greenlight has no nginx-style status page (it has Prometheus metrics on the admin API)",
    ),
    e(
        &["ssl_early_data"],
        Warning,
        "0-RTT early data is not enabled in greenlight",
    ),
    e(
        &["ssl_password_file"],
        Warning,
        "encrypted private keys are not supported; give greenlight an unencrypted key file",
    ),
    e(
        &["ssl_reject_handshake"],
        Warning,
        "greenlight does not reject TLS handshakes for unknown names this way; unknown names get the default site",
    ),
    e(
        &["charset"],
        Step,
        "the route's `charset:` (nginx inheritance computed at import): `; charset=NAME` on text answers (nginx's default `charset_types`) that name none; `off` needs nothing",
    ),
    e(
        &["source_charset", "override_charset", "charset_types"],
        Warning,
        "greenlight labels answers with `charset:` but does not convert character sets, and labels nginx's default types only; set the charset in the app",
    ),
    e(
        &[
            "ssi",
            "ssi_types",
            "addition_types",
            "add_before_body",
            "add_after_body",
        ],
        Warning,
        "response body processing is not supported by greenlight",
    ),
    e(
        &["ignore_invalid_headers"],
        Warning,
        "greenlight applies its own header validation rules; to pass header names with `_`, set `underscores_in_headers: true` on the site",
    ),
    e(
        &["*_by_lua*", "lua_*"],
        Warning,
        "Lua code is not run by greenlight (a `*_by_lua_block` body is skipped whole); move the logic into the app",
    ),
];

/// The text used for any directive not in [`TABLE`].
pub(crate) const UNKNOWN: &str =
    "greenlight has no equivalent, so it was not converted; check whether the site relies on it";

fn matches(pattern: &str, name: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(inner), _) if inner.ends_with('*') => name.contains(inner.trim_end_matches('*')),
        (Some(suffix), _) => name.ends_with(suffix),
        (None, Some(prefix)) => name.starts_with(prefix),
        (None, None) => pattern == name,
    }
}

/// The entry for a directive name (exact names win over patterns).
pub(crate) fn lookup(name: &str) -> Option<&'static Entry> {
    TABLE.iter().find(|e| e.names.contains(&name)).or_else(|| {
        TABLE
            .iter()
            .find(|e| e.names.iter().any(|p| matches(p, name)))
    })
}

/// The README importer table (between its markers), made from [`TABLE`].
#[cfg(test)]
pub(crate) fn markdown() -> String {
    let mut s = String::from("| nginx | becomes | greenlight |\n| --- | --- | --- |\n");
    for e in TABLE {
        let names: Vec<String> = e.names.iter().map(|n| format!("`{n}`")).collect();
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            names.join(", "),
            e.kind.word(),
            e.text.replace('|', "\\|")
        ));
    }
    s
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod table_tests;
