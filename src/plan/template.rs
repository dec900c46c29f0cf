//! Templates: a value with variables (`https://$host$request_uri`,
//! `${host}:$server_port`, `/new/$1`), parsed once at load into literal and
//! variable [`Segment`]s, rendered per request into one `String` with no
//! parsing, regex or lookup by name.
//!
//! Syntax is nginx's: `$name` takes the longest run of `[A-Za-z0-9_]`,
//! `${name}` delimits a name followed by name characters, `$1`..`$9` are
//! regex captures (one digit, as in nginx). A `$` not followed by a name is
//! an error, as is an unknown name: both are reported at load with the byte
//! offset into the value, so `check` can point at the column.

use super::vars::VarCx;
use http::HeaderName;

/// A variable a template can read; what each one means is in [`super::vars`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Var {
    /// `$host`: the request's host name, lowercase, without port.
    Host,
    /// `$scheme`: `http` or `https`.
    Scheme,
    /// `$request_uri`: the path and query as the client sent them.
    RequestUri,
    /// `$uri` / `$document_uri`: the current (possibly rewritten) path.
    Uri,
    /// `$args` / `$query_string`: the current query string, without `?`.
    Args,
    /// `$is_args`: `?` when there is a query string, else empty.
    IsArgs,
    /// `$arg_NAME`: the first value of query parameter NAME (as sent).
    Arg(Box<str>),
    /// `$remote_addr`: the client's IP address.
    RemoteAddr,
    /// `$server_port`: the port the request arrived on.
    ServerPort,
    /// `$server_name`: the site's first host name.
    ServerName,
    /// `$http_NAME`: request header NAME (`_` read as `-`).
    Http(HeaderName),
    /// `$cookie_NAME`: the value of cookie NAME.
    Cookie(Box<str>),
    /// `$request_method`: `GET`, `POST`, ...
    RequestMethod,
    /// `$1`..`$9` (and `$0`): group of the last regex that matched.
    Capture(u8),
    /// A named group of the last regex that matched (a rewrite's own
    /// `from`), resolved to its index at load.
    LastNamed(u8),
    /// A named group of the route's regex location, resolved at load.
    LocationNamed(u8),
    /// A variable defined by a top-level `maps:` entry: its index there.
    Map(u16),
    /// `$upstream_addr`: `ip:port` (or `unix:/path`) of the upstream server this request
    /// went to (empty before one is chosen, and for answers greenlight
    /// makes itself).
    UpstreamAddr,
    /// `$proxy_host`: the host of the upstream server this request goes to,
    /// as written in the config (with its port unless 80 or 443) — what
    /// nginx sends as `Host` by default. Empty before a server is chosen.
    ProxyHost,
    /// `$ssl_client_verify`, `$ssl_client_s_dn`, …: the client certificate
    /// of a `client_auth:` site.
    SslClient(crate::tls::client_cert::SslClientVar),
}

impl Var {
    /// Whether the value comes from the connection, the site or the route's
    /// location match (client address, port, TLS, site name) rather than
    /// from the request and the current path alone: only then does a render
    /// need everything `proxy::steps` gathers.
    pub fn needs_connection(&self) -> bool {
        matches!(
            self,
            Var::Host
                | Var::Scheme
                | Var::RemoteAddr
                | Var::ServerPort
                | Var::ServerName
                | Var::LocationNamed(_)
                | Var::UpstreamAddr
                | Var::ProxyHost
                | Var::SslClient(_)
        )
    }
}

/// The variable names `check` lists when a name is unknown.
pub const KNOWN: &str = "$host, $scheme, $request_uri, $uri, $document_uri, $args, $query_string, \
$is_args, $arg_NAME, $remote_addr, $server_port, $server_name, $http_NAME, $cookie_NAME, \
$request_method, $upstream_addr, $proxy_host, $1..$9, named regex captures and the names under `maps:`";

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Text copied as is.
    Literal(Box<str>),
    /// A variable's value at request time.
    Var(Var),
}

/// Named regex groups a template may refer to, with their group index.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scope<'a> {
    /// Named groups of the regex whose match is current when the template is
    /// rendered (a rewrite's `from` for its `to`).
    pub last: &'a [(String, usize)],
    /// Named groups of the route's regex location.
    pub location: &'a [(String, usize)],
    /// The variables `maps:` defines, in file order (empty where maps
    /// may not be read: inside a map itself).
    pub maps: &'a [String],
}

/// Why a template was refused, with the byte offset of the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset into the template text.
    pub offset: usize,
    /// What is wrong.
    pub what: String,
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    segments: Box<[Segment]>,
    /// Sum of the literal lengths: the starting capacity of a render.
    literal_len: usize,
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Template {
    /// Parses `text`; names are resolved against the known variables and
    /// the named groups of `scope`.
    pub fn parse(text: &str, scope: &Scope<'_>) -> Result<Template, TemplateError> {
        let bytes = text.as_bytes();
        let mut segments = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        while i < bytes.len() {
            let Some(rel) = text[i..].find('$') else {
                lit.push_str(&text[i..]);
                break;
            };
            lit.push_str(&text[i..i + rel]);
            let at = i + rel;
            let (name, next) = if bytes.get(at + 1) == Some(&b'{') {
                let Some(close) = text[at + 2..].find('}') else {
                    return Err(TemplateError {
                        offset: at,
                        what: "`${` without its closing `}`".into(),
                    });
                };
                (&text[at + 2..at + 2 + close], at + 3 + close)
            } else if bytes.get(at + 1).is_some_and(u8::is_ascii_digit) {
                (&text[at + 1..at + 2], at + 2)
            } else {
                let end = bytes[at + 1..]
                    .iter()
                    .position(|b| !is_name_byte(*b))
                    .map_or(bytes.len(), |p| at + 1 + p);
                (&text[at + 1..end], end)
            };
            if name.is_empty() || !name.bytes().all(is_name_byte) {
                return Err(TemplateError {
                    offset: at,
                    what: "`$` is not followed by a variable name".into(),
                });
            }
            let var = resolve(name, scope).ok_or_else(|| TemplateError {
                offset: at,
                what: format!("unknown variable `${name}`"),
            })?;
            if !lit.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut lit).into()));
            }
            segments.push(Segment::Var(var));
            i = next;
        }
        if !lit.is_empty() {
            segments.push(Segment::Literal(lit.into()));
        }
        Ok(Template::from_segments(segments))
    }

    /// A template of these segments (adjacent literals are kept apart).
    pub fn from_segments(segments: Vec<Segment>) -> Template {
        let literal_len = segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.len(),
                Segment::Var(_) => 0,
            })
            .sum();
        Template {
            segments: segments.into(),
            literal_len,
        }
    }

    /// The text, when the template has no variable.
    pub fn as_literal(&self) -> Option<&str> {
        match &*self.segments {
            [] => Some(""),
            [Segment::Literal(l)] => Some(l),
            _ => None,
        }
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether a variable needs more than the request and the current path
    /// ([`Var::needs_connection`]).
    pub fn needs_connection(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Var(v) if v.needs_connection()))
    }

    /// Appends the rendered value to `out`.
    pub fn render_into(&self, cx: &VarCx<'_>, out: &mut String) {
        for s in self.segments.iter() {
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Var(v) => cx.write(v, out),
            }
        }
    }

    /// `f` of the rendered text, rendered into this thread's buffer (kept
    /// between requests, up to [`RENDER_KEEP`] bytes): for a caller that
    /// keeps a copy of its own size (a header value, a rewritten path), so
    /// that no `String` is allocated and freed per request.
    pub fn render_with<R>(&self, cx: &VarCx<'_>, f: impl FnOnce(&str) -> R) -> R {
        RENDER.with_borrow_mut(|buf| {
            buf.clear();
            self.render_into(cx, buf);
            let out = f(buf);
            if buf.capacity() > RENDER_KEEP {
                *buf = String::new();
            }
            out
        })
    }

    /// The rendered value.
    pub fn render(&self, cx: &VarCx<'_>) -> String {
        let mut out = String::with_capacity(self.literal_len + 32);
        self.render_into(cx, &mut out);
        out
    }
}

thread_local! {
    /// The buffer of [`Template::render_with`].
    static RENDER: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// The largest render buffer a thread keeps (a bigger value is rare).
const RENDER_KEEP: usize = 4096;

/// The variable called `name` (without `$`), if there is one.
fn resolve(name: &str, scope: &Scope<'_>) -> Option<Var> {
    if let Ok(n) = name.parse::<u8>() {
        return (n <= 9).then_some(Var::Capture(n));
    }
    let named = |list: &[(String, usize)]| {
        list.iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, i)| u8::try_from(*i).ok())
    };
    if let Some(i) = named(scope.last) {
        return Some(Var::LastNamed(i));
    }
    if let Some(i) = named(scope.location) {
        return Some(Var::LocationNamed(i));
    }
    if let Some(i) = scope.maps.iter().position(|m| m == name) {
        return u16::try_from(i).ok().map(Var::Map);
    }
    Some(match name {
        "host" => Var::Host,
        "scheme" => Var::Scheme,
        "request_uri" => Var::RequestUri,
        "uri" | "document_uri" => Var::Uri,
        "args" | "query_string" => Var::Args,
        "is_args" => Var::IsArgs,
        "remote_addr" => Var::RemoteAddr,
        "server_port" => Var::ServerPort,
        "server_name" => Var::ServerName,
        "request_method" => Var::RequestMethod,
        "upstream_addr" => Var::UpstreamAddr,
        "proxy_host" => Var::ProxyHost,
        _ if name.starts_with("ssl_client_") => {
            Var::SslClient(crate::tls::client_cert::SslClientVar::from_name(name)?)
        }
        _ => {
            if let Some(a) = name.strip_prefix("arg_").filter(|a| !a.is_empty()) {
                Var::Arg(a.into())
            } else if let Some(c) = name.strip_prefix("cookie_").filter(|c| !c.is_empty()) {
                Var::Cookie(c.into())
            } else if let Some(h) = name.strip_prefix("http_") {
                // nginx: `$http_x_real_ip` reads `X-Real-IP`.
                let h = h.replace('_', "-").to_ascii_lowercase();
                Var::Http(HeaderName::from_bytes(h.as_bytes()).ok()?)
            } else {
                return None;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Template, TemplateError> {
        Template::parse(t, &Scope::default())
    }

    #[test]
    fn literals_and_variables_split_into_segments() {
        let t = parse("https://$host$request_uri").expect("ok");
        assert_eq!(
            t.segments(),
            [
                Segment::Literal("https://".into()),
                Segment::Var(Var::Host),
                Segment::Var(Var::RequestUri)
            ]
        );
        let t = parse("${host}:$server_port").expect("ok");
        assert_eq!(
            t.segments(),
            [
                Segment::Var(Var::Host),
                Segment::Literal(":".into()),
                Segment::Var(Var::ServerPort)
            ]
        );
        let t = parse("/new/$1x$12").expect("ok");
        assert_eq!(
            t.segments(),
            [
                Segment::Literal("/new/".into()),
                Segment::Var(Var::Capture(1)),
                Segment::Literal("x".into()),
                Segment::Var(Var::Capture(1)),
                Segment::Literal("2".into()),
            ],
            "one digit per capture, like nginx"
        );
        assert_eq!(
            parse("max-age=63072000").expect("ok").as_literal(),
            Some("max-age=63072000")
        );
        assert_eq!(parse("").expect("ok").as_literal(), Some(""));
    }

    #[test]
    fn prefixed_names_read_their_argument() {
        let t = parse("$arg_page $cookie_sid $http_x_real_ip").expect("ok");
        let vars: Vec<_> = t
            .segments()
            .iter()
            .filter_map(|s| match s {
                Segment::Var(v) => Some(v.clone()),
                Segment::Literal(_) => None,
            })
            .collect();
        assert_eq!(
            vars,
            [
                Var::Arg("page".into()),
                Var::Cookie("sid".into()),
                Var::Http(HeaderName::from_static("x-real-ip"))
            ]
        );
    }

    #[test]
    fn unknown_names_and_bare_dollars_are_errors_with_their_offset() {
        let e = parse("https://$hots/x").expect_err("unknown");
        assert_eq!(e.offset, 8);
        assert!(e.what.contains("$hots"), "{}", e.what);
        assert_eq!(parse("a $ b").expect_err("bare").offset, 2);
        assert_eq!(parse("${host").expect_err("open").offset, 0);
        assert_eq!(parse("x${}").expect_err("empty").offset, 1);
        assert!(parse("$arg_").is_err());
    }

    #[test]
    fn named_groups_resolve_to_their_index_last_regex_first() {
        let last = [("id".to_string(), 2)];
        let location = [("id".to_string(), 1), ("sub".to_string(), 3)];
        let scope = Scope {
            last: &last,
            location: &location,
            maps: &[],
        };
        let t = Template::parse("$id/${sub}", &scope).expect("ok");
        assert_eq!(
            t.segments(),
            [
                Segment::Var(Var::LastNamed(2)),
                Segment::Literal("/".into()),
                Segment::Var(Var::LocationNamed(3))
            ]
        );
        assert!(parse("$id").is_err(), "not a group without a scope");
    }
}
