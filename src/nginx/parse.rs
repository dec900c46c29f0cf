//! nginx configuration syntax: a lexer and parser with line and column
//! positions. `include` directives are expanded by `include.rs`.
//!
//! The rules follow nginx's own reader: words are separated by spaces, tabs
//! and newlines; `;` ends a directive and `{ ... }` gives it a block; a `#`
//! at the start of a word starts a comment; `"` or `'` at the start of a word
//! starts a quoted string in which `\"`, `\'`, `\\`, `\t`, `\r` and `\n` are
//! escapes (any other backslash is kept); `${name}` keeps its braces inside a
//! word. Variables are kept as text.

use std::path::PathBuf;

use super::{ImportError, Note};

/// Deepest nesting of blocks accepted (nginx itself nests only a few levels).
const MAX_BLOCK_DEPTH: usize = 64;

/// Directive names that, found as the first word of a line inside the
/// arguments of another directive, almost surely mean a `;` was forgotten.
const LIKELY_DIRECTIVES: &[&str] = &[
    "listen",
    "server_name",
    "location",
    "proxy_pass",
    "root",
    "index",
    "return",
    "rewrite",
    "ssl_certificate",
    "ssl_certificate_key",
    "client_max_body_size",
    "proxy_set_header",
    "proxy_http_version",
    "proxy_read_timeout",
    "proxy_connect_timeout",
    "proxy_send_timeout",
    "include",
    "try_files",
    "server",
    "upstream",
    "add_header",
    "access_log",
    "error_log",
    "error_page",
];

/// One directive with its arguments and, for block directives, its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    /// The directive name (first word).
    pub name: String,
    /// The remaining words, unquoted and unescaped.
    pub args: Vec<String>,
    /// Index into [`Config::files`].
    pub file: usize,
    /// 1-based line of the name.
    pub line: usize,
    /// 1-based column of the name.
    pub col: usize,
    /// Position in document order, with includes expanded in place.
    pub seq: usize,
    /// Children, when the directive has a `{ ... }` block.
    pub block: Option<Vec<Directive>>,
}

impl Directive {
    /// The first argument, or "" when there is none.
    pub fn arg0(&self) -> &str {
        self.args.first().map(String::as_str).unwrap_or("")
    }

    /// The children of a block directive (empty for simple directives).
    pub fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// A parsed configuration with includes expanded.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Display paths of every file read, indexed by [`Directive::file`].
    pub files: Vec<PathBuf>,
    /// The top-level directives.
    pub directives: Vec<Directive>,
    /// Messages produced while loading (missing includes, ...).
    pub notes: Vec<Note>,
}

impl Config {
    /// The display path of a file index.
    pub fn file_name(&self, file: usize) -> String {
        self.files
            .get(file)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "?".to_string())
    }
}

/// A syntax error before the file name is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl SyntaxError {
    /// The error as an [`ImportError::Syntax`] in `file`.
    pub fn into_import(self, file: PathBuf) -> ImportError {
        ImportError::Syntax {
            file,
            line: self.line,
            col: self.col,
            message: self.message,
        }
    }
}

fn err<T>(line: usize, col: usize, message: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError {
        line,
        col,
        message: message.into(),
    })
}

/// Parses one file's text into directives (includes not expanded, `seq` 0).
pub(crate) fn parse_text(text: &str, file: usize) -> Result<Vec<Directive>, SyntaxError> {
    let mut parser = Parser {
        lexer: Lexer::new(text),
        file,
        last_end: (1, 1),
    };
    parser.block(0, None)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Semi,
    Open,
    Close,
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
    col: usize,
    /// Position just after the token.
    end: (usize, usize),
    quoted: bool,
    /// The token starts on a later line than the previous token ended.
    first_on_line: bool,
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    col: usize,
    prev_end_line: usize,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn unescape(e: char, out: &mut String) {
    match e {
        '"' | '\'' | '\\' => out.push(e),
        't' => out.push('\t'),
        'r' => out.push('\r'),
        'n' => out.push('\n'),
        other => {
            out.push('\\');
            out.push(other);
        }
    }
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            chars: text.chars().peekable(),
            line: 1,
            col: 1,
            prev_end_line: 0,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn next_token(&mut self) -> Result<Token, SyntaxError> {
        loop {
            match self.chars.peek().copied() {
                Some(c) if is_space(c) => {
                    self.bump();
                }
                Some('#') => {
                    while let Some(c) = self.chars.peek().copied() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                _ => break,
            }
        }
        let (line, col) = (self.line, self.col);
        let first_on_line = line > self.prev_end_line;
        let mut quoted = false;
        let tok = match self.chars.peek().copied() {
            None => Tok::Eof,
            Some(';') => {
                self.bump();
                Tok::Semi
            }
            Some('{') => {
                self.bump();
                Tok::Open
            }
            Some('}') => {
                self.bump();
                Tok::Close
            }
            Some(q @ ('"' | '\'')) => {
                quoted = true;
                Tok::Word(self.quoted(q, line, col)?)
            }
            Some(_) => Tok::Word(self.word()),
        };
        self.prev_end_line = self.line;
        Ok(Token {
            tok,
            line,
            col,
            end: (self.line, self.col),
            quoted,
            first_on_line,
        })
    }

    fn quoted(&mut self, q: char, line: usize, col: usize) -> Result<String, SyntaxError> {
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                None => {
                    return err(
                        line,
                        col,
                        format!("unterminated string: the {q} opened here is never closed"),
                    );
                }
                Some('\\') => match self.bump() {
                    None => {
                        return err(
                            line,
                            col,
                            format!("unterminated string: the {q} opened here is never closed"),
                        );
                    }
                    Some(e) => unescape(e, &mut s),
                },
                Some(c) if c == q => break,
                Some(c) => s.push(c),
            }
        }
        match self.chars.peek().copied() {
            None => Ok(s),
            Some(c) if is_space(c) || matches!(c, ';' | '{' | '}' | ')') => Ok(s),
            Some(c) => err(
                self.line,
                self.col,
                format!("unexpected '{c}' after a quoted string (expected a space, ';' or '{{')"),
            ),
        }
    }

    /// Skips the body of an OpenResty `*_by_lua_block { … }` up to its
    /// closing `}`: it is Lua, not nginx syntax. Braces inside Lua strings
    /// ('…', "…", [[…]]) and comments (`--` to the end of the line) do not
    /// count, as in the lua-nginx-module's own reader.
    fn skip_lua_block(&mut self, line: usize, col: usize) -> Result<(), SyntaxError> {
        let mut depth = 1usize;
        while let Some(c) = self.bump() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                q @ ('"' | '\'') => {
                    while let Some(c) = self.bump() {
                        match c {
                            '\\' => {
                                self.bump();
                            }
                            c if c == q || c == '\n' => break,
                            _ => {}
                        }
                    }
                }
                '[' if self.chars.peek() == Some(&'[') => self.skip_long_bracket(),
                '-' if self.chars.peek() == Some(&'-') => {
                    self.bump();
                    if self.chars.peek() == Some(&'[') {
                        self.bump();
                        if self.chars.peek() == Some(&'[') {
                            self.skip_long_bracket();
                            continue;
                        }
                    }
                    while let Some(c) = self.chars.peek().copied() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                _ => {}
            }
        }
        err(
            line,
            col,
            "unexpected end of file: this Lua block is not closed with '}'",
        )
    }

    /// Skips a Lua `[[ … ]]` long string or comment (the first `[` is read).
    fn skip_long_bracket(&mut self) {
        self.bump();
        let mut prev = ' ';
        while let Some(c) = self.bump() {
            if prev == ']' && c == ']' {
                return;
            }
            prev = c;
        }
    }

    fn word(&mut self) -> String {
        let mut s = String::new();
        let mut in_var_braces = false;
        while let Some(c) = self.chars.peek().copied() {
            if is_space(c) || c == ';' {
                break;
            }
            match c {
                '{' if s.ends_with('$') => in_var_braces = true,
                '{' => break,
                '}' if in_var_braces => in_var_braces = false,
                '}' => break,
                '\\' => {
                    self.bump();
                    match self.bump() {
                        Some(e) => unescape(e, &mut s),
                        None => s.push('\\'),
                    }
                    continue;
                }
                _ => {}
            }
            self.bump();
            s.push(c);
        }
        s
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    file: usize,
    last_end: (usize, usize),
}

impl Parser<'_> {
    fn next(&mut self) -> Result<Token, SyntaxError> {
        let t = self.lexer.next_token()?;
        Ok(t)
    }

    /// Parses directives until the end of the file (`opener` is None) or
    /// until the `}` that closes the block opened by `opener`.
    fn block(
        &mut self,
        depth: usize,
        opener: Option<(&str, usize)>,
    ) -> Result<Vec<Directive>, SyntaxError> {
        let mut out = Vec::new();
        loop {
            let t = self.next()?;
            match t.tok {
                Tok::Eof => {
                    return match opener {
                        None => Ok(out),
                        Some((name, line)) => err(
                            t.line,
                            t.col,
                            format!(
                                "unexpected end of file: the block of '{name}' opened at line {line} is not closed with '}}'"
                            ),
                        ),
                    };
                }
                Tok::Close => {
                    return match opener {
                        Some(_) => Ok(out),
                        None => err(t.line, t.col, "unexpected '}' (no block is open here)"),
                    };
                }
                Tok::Semi => return err(t.line, t.col, "unexpected ';' (no directive before it)"),
                Tok::Open => {
                    return err(
                        t.line,
                        t.col,
                        "unexpected '{' (no directive name before it)",
                    );
                }
                Tok::Word(name) => {
                    self.last_end = t.end;
                    let d = self.directive(name, t.line, t.col, depth)?;
                    out.push(d);
                }
            }
        }
    }

    fn directive(
        &mut self,
        name: String,
        line: usize,
        col: usize,
        depth: usize,
    ) -> Result<Directive, SyntaxError> {
        let mut args = Vec::new();
        loop {
            let t = self.next()?;
            match t.tok {
                Tok::Word(w) => {
                    if t.first_on_line && !t.quoted && LIKELY_DIRECTIVES.contains(&w.as_str()) {
                        let (l, c) = self.last_end;
                        return err(l, c, format!("missing ';' after directive '{name}'"));
                    }
                    self.last_end = t.end;
                    args.push(w);
                }
                Tok::Semi => {
                    return Ok(Directive {
                        name,
                        args,
                        file: self.file,
                        line,
                        col,
                        seq: 0,
                        block: None,
                    });
                }
                Tok::Open => {
                    if depth >= MAX_BLOCK_DEPTH {
                        return err(
                            t.line,
                            t.col,
                            format!(
                                "blocks nested too deeply (more than {MAX_BLOCK_DEPTH} levels)"
                            ),
                        );
                    }
                    let children = if name.ends_with("_by_lua_block") {
                        self.lexer.skip_lua_block(t.line, t.col)?;
                        Vec::new()
                    } else {
                        self.block(depth + 1, Some((&name, line)))?
                    };
                    return Ok(Directive {
                        name,
                        args,
                        file: self.file,
                        line,
                        col,
                        seq: 0,
                        block: Some(children),
                    });
                }
                Tok::Close => {
                    let (l, c) = self.last_end;
                    return err(
                        l,
                        c,
                        format!(
                            "missing ';' after directive '{name}' (found '}}' at line {})",
                            t.line
                        ),
                    );
                }
                Tok::Eof => {
                    let (l, c) = self.last_end;
                    return err(
                        l,
                        c,
                        format!("missing ';' after directive '{name}' (the file ends here)"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua_blocks_are_skipped_whole() {
        let d = parse(
            "content_by_lua_block { local t = {a = 1} ngx.say(\"}\") -- }\n local s = [[ } ]] }\nlisten 80;",
        );
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].name, "content_by_lua_block");
        assert_eq!(d[0].block.as_deref(), Some(&[][..]));
        assert_eq!(d[1].name, "listen");
    }

    fn parse(text: &str) -> Vec<Directive> {
        match parse_text(text, 0) {
            Ok(d) => d,
            Err(e) => panic!("unexpected error {e:?} for {text:?}"),
        }
    }

    fn parse_err(text: &str) -> SyntaxError {
        match parse_text(text, 0) {
            Ok(d) => panic!("expected an error for {text:?}, got {d:?}"),
            Err(e) => e,
        }
    }

    fn words(d: &Directive) -> Vec<&str> {
        std::iter::once(d.name.as_str())
            .chain(d.args.iter().map(String::as_str))
            .collect()
    }

    #[test]
    fn simple_directives_and_blocks() {
        let ds = parse("worker_processes 2;\nhttp {\n  server {\n    listen 80;\n  }\n}\n");
        assert_eq!(ds.len(), 2);
        assert_eq!(words(&ds[0]), ["worker_processes", "2"]);
        assert_eq!((ds[1].line, ds[1].col), (2, 1));
        let server = &ds[1].children()[0];
        assert_eq!(server.name, "server");
        assert_eq!((server.line, server.col), (3, 3));
        let listen = &server.children()[0];
        assert_eq!(words(listen), ["listen", "80"]);
        assert_eq!((listen.line, listen.col), (4, 5));
        assert!(listen.block.is_none());
    }

    #[test]
    fn strings_and_escapes() {
        let ds = parse(
            r#"a "x y" 'single \' quote' "dq \" \\ \t \n \q";
b un\"quoted \x;
c "";"#,
        );
        assert_eq!(
            words(&ds[0]),
            ["a", "x y", "single ' quote", "dq \" \\ \t \n \\q"]
        );
        assert_eq!(words(&ds[1]), ["b", "un\"quoted", "\\x"]);
        assert_eq!(words(&ds[2]), ["c", ""]);
    }

    #[test]
    fn strings_span_lines_and_keep_specials() {
        let ds = parse("log_format main '$a {x} ;# no comment'\n    \"$b\";\nnext 1;");
        assert_eq!(
            words(&ds[0]),
            ["log_format", "main", "$a {x} ;# no comment", "$b"]
        );
        assert_eq!(ds[1].line, 3);
    }

    #[test]
    fn comments() {
        let ds = parse("# top\nlisten 80; # trailing\n# listen 81;\nserver_name a#b;\n");
        assert_eq!(ds.len(), 2);
        assert_eq!(words(&ds[1]), ["server_name", "a#b"]);
        assert_eq!(ds[1].line, 4);
    }

    #[test]
    fn variables_kept_as_text() {
        let ds = parse(
            "return 301 https://$host$request_uri;\nset $x ${host}bar;\nif ($a = \"b\") { return 404; }",
        );
        assert_eq!(
            words(&ds[0]),
            ["return", "301", "https://$host$request_uri"]
        );
        assert_eq!(words(&ds[1]), ["set", "$x", "${host}bar"]);
        assert_eq!(words(&ds[2]), ["if", "($a", "=", "b", ")"]);
        assert_eq!(ds[2].children().len(), 1);
    }

    #[test]
    fn block_right_after_word() {
        let ds = parse("location /{proxy_pass http://a;}");
        assert_eq!(words(&ds[0]), ["location", "/"]);
        assert_eq!(words(&ds[0].children()[0]), ["proxy_pass", "http://a"]);
    }

    #[test]
    fn crlf_line_endings() {
        let ds = parse("a 1;\r\nb 2;\r\n");
        assert_eq!(ds[1].line, 2);
        assert_eq!(ds[1].col, 1);
    }

    #[test]
    fn unexpected_close() {
        let e = parse_err("listen 80;\n}\n");
        assert_eq!((e.line, e.col), (2, 1));
        assert!(e.message.contains("unexpected '}'"), "{}", e.message);
    }

    #[test]
    fn missing_semicolon_before_close() {
        let e = parse_err("location / {\n  proxy_pass http://a\n}\n");
        assert_eq!((e.line, e.col), (2, 22));
        assert!(
            e.message
                .starts_with("missing ';' after directive 'proxy_pass'"),
            "{}",
            e.message
        );
    }

    #[test]
    fn missing_semicolon_before_next_directive() {
        let e = parse_err("server {\n  listen 80\n  server_name a.com;\n}\n");
        assert_eq!((e.line, e.col), (2, 12));
        assert_eq!(e.message, "missing ';' after directive 'listen'");
    }

    #[test]
    fn multi_line_arguments_are_fine() {
        let ds = parse("server_name a.com\n   b.com\n   c.com;\n");
        assert_eq!(words(&ds[0]), ["server_name", "a.com", "b.com", "c.com"]);
    }

    #[test]
    fn unterminated_string() {
        let e = parse_err("a 1;\nreturn 200 \"ok;\n}\n");
        assert_eq!((e.line, e.col), (2, 12));
        assert!(
            e.message.starts_with("unterminated string"),
            "{}",
            e.message
        );
        let e = parse_err("a 'x\\");
        assert_eq!((e.line, e.col), (1, 3));
    }

    #[test]
    fn text_after_quote() {
        let e = parse_err("a \"x\"y;");
        assert_eq!((e.line, e.col), (1, 6));
        assert!(e.message.contains("unexpected 'y'"), "{}", e.message);
    }

    #[test]
    fn stray_semicolon_and_brace() {
        let e = parse_err("a 1;\n  ;");
        assert_eq!(
            (e.line, e.col, e.message.as_str()),
            (2, 3, "unexpected ';' (no directive before it)")
        );
        let e = parse_err("{ }");
        assert_eq!((e.line, e.col), (1, 1));
    }

    #[test]
    fn truncated_inputs() {
        let e = parse_err("http {\n  server {\n    listen 80;\n");
        assert_eq!((e.line, e.col), (4, 1));
        assert!(
            e.message.contains("'server' opened at line 2"),
            "{}",
            e.message
        );
        let e = parse_err("http {\n  listen 80");
        assert_eq!((e.line, e.col), (2, 12));
        assert!(
            e.message.contains("missing ';' after directive 'listen'"),
            "{}",
            e.message
        );
        assert!(parse("").is_empty());
        assert!(parse("# only a comment").is_empty());
    }

    #[test]
    fn nesting_limit() {
        let deep = "a {".repeat(MAX_BLOCK_DEPTH + 2);
        let e = parse_err(&deep);
        assert!(e.message.contains("nested too deeply"), "{}", e.message);
        let ok = format!("{}{}", "a {".repeat(10), "}".repeat(10));
        assert_eq!(parse(&ok).len(), 1);
    }

    #[test]
    fn columns_count_characters() {
        let e = parse_err("é ü }");
        assert_eq!((e.line, e.col), (1, 4));
    }
}
