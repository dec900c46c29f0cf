//! htpasswd files (nginx `auth_basic_user_file`): parsed once at load into
//! [`Users`], checked per request with [`Users::verify`].
//!
//! Hash formats, by the prefix of the stored value — what Apache's
//! `htpasswd` and `openssl passwd` write:
//!
//! | prefix              | written by                          | checked by            |
//! |---------------------|-------------------------------------|-----------------------|
//! | `$2a$ $2b$ $2y$`    | `htpasswd -B`                       | `bcrypt` crate        |
//! | `$5$` / `$6$`       | `openssl passwd -5` / `-6`          | `sha-crypt` crate     |
//! | `$apr1$` / `$1$`    | `htpasswd -m` (default), `openssl passwd -apr1` / `-1` | [`md5_crypt`] on the `md-5` crate |
//! | `{SHA}`             | `htpasswd -s`                       | `sha1` crate          |
//! | `{PLAIN}`           | by hand (nginx reads it too)        | compared as bytes     |
//!
//! No maintained crate checks `$apr1$` (the MD5-crypt of Apache, which
//! differs from `$1$` only by its magic word), so [`md5_crypt`] is the one
//! algorithm written here, tested against the real tools' output. DES
//! `crypt(3)` (`htpasswd -d`) is refused at load: it keeps 8 characters of
//! a password and nginx only reads it where the C library still does.
//!
//! Every comparison of a computed hash with the stored one is constant-time
//! (`subtle`; the bcrypt and sha-crypt crates do theirs the same way).

use base64::Engine;
use sha_crypt::PasswordVerifier;
use std::collections::HashMap;
use subtle::ConstantTimeEq;

/// One user's stored hash, its format known at load.
#[derive(Clone)]
pub enum StoredHash {
    /// `$2y$…` (60 characters).
    Bcrypt(Box<str>),
    /// `$5$…` or `$6$…`.
    ShaCrypt(Box<str>),
    /// `$apr1$salt$hash` or `$1$salt$hash`.
    Md5Crypt {
        /// `$apr1$` or `$1$`.
        magic: &'static str,
        /// At most 8 characters.
        salt: Box<str>,
        /// The 22-character encoded digest.
        hash: Box<str>,
    },
    /// `{SHA}` + base64 of the SHA-1 of the password.
    Sha1([u8; 20]),
    /// `{PLAIN}` + the password.
    Plain(Box<str>),
}

impl std::fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a hash (logs, `check` output).
        f.write_str(match self {
            StoredHash::Bcrypt(_) => "bcrypt",
            StoredHash::ShaCrypt(_) => "sha-crypt",
            StoredHash::Md5Crypt { .. } => "md5-crypt",
            StoredHash::Sha1(_) => "sha1",
            StoredHash::Plain(_) => "plain",
        })
    }
}

impl StoredHash {
    /// Parses a stored value; `Err` says what it is and how to fix it.
    pub fn parse(s: &str) -> Result<StoredHash, String> {
        if let Some(rest) = s.strip_prefix("$2") {
            let ok = s.len() == 60
                && s.is_ascii()
                && matches!(rest.as_bytes().first(), Some(b'a' | b'b' | b'y' | b'x'))
                && rest.get(1..2) == Some("$")
                && rest
                    .get(2..4)
                    .is_some_and(|c| c.bytes().all(|b| b.is_ascii_digit()))
                && rest.get(4..5) == Some("$");
            return if ok {
                Ok(StoredHash::Bcrypt(s.into()))
            } else {
                Err("a malformed bcrypt hash (expected 60 characters like `$2y$05$…`)".into())
            };
        }
        if s.starts_with("$5$") || s.starts_with("$6$") {
            return match sha_crypt::PasswordHashRef::new(s) {
                Ok(_) => Ok(StoredHash::ShaCrypt(s.into())),
                Err(_) => Err("a malformed SHA-crypt hash (`$5$…` / `$6$…`)".into()),
            };
        }
        for magic in [md5_crypt::APR1, md5_crypt::MD5] {
            if let Some(rest) = s.strip_prefix(magic) {
                let (salt, hash) = rest
                    .split_once('$')
                    .ok_or("a malformed MD5-crypt hash (expected `$apr1$SALT$HASH`)")?;
                if salt.len() > 8 || hash.len() != 22 || !salt.is_ascii() || !hash.is_ascii() {
                    return Err("a malformed MD5-crypt hash (a salt of up to 8 characters, then 22 characters)".into());
                }
                return Ok(StoredHash::Md5Crypt {
                    magic,
                    salt: salt.into(),
                    hash: hash.into(),
                });
            }
        }
        if let Some(b64) = s.strip_prefix("{SHA}") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| "a malformed `{SHA}` hash (base64 of 20 bytes)".to_string())?;
            return <[u8; 20]>::try_from(raw.as_slice())
                .map(StoredHash::Sha1)
                .map_err(|_| "a malformed `{SHA}` hash (base64 of 20 bytes)".into());
        }
        if let Some(p) = s.strip_prefix("{PLAIN}") {
            return Ok(StoredHash::Plain(p.into()));
        }
        if s.starts_with('$') {
            return Err("a hash in a format greenlight does not read (bcrypt `$2y$`, `$apr1$`, `$1$`, `$5$`, `$6$`, `{SHA}` and `{PLAIN}` are read)".into());
        }
        Err("a DES crypt(3) hash or plain text, which greenlight does not read (DES keeps only 8 characters of a password)".into())
    }

    /// True for the formats that cost milliseconds or more to check
    /// (bcrypt, SHA-crypt), which are checked off the worker threads.
    pub fn is_slow(&self) -> bool {
        matches!(self, StoredHash::Bcrypt(_) | StoredHash::ShaCrypt(_))
    }

    /// Does `password` hash to this value? Constant-time in the comparison.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            StoredHash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            StoredHash::ShaCrypt(h) => sha_crypt::ShaCrypt::default()
                .verify_password(password, &**h)
                .is_ok(),
            StoredHash::Md5Crypt { magic, salt, hash } => {
                let got = md5_crypt::encode(password, salt.as_bytes(), magic);
                got.as_bytes().ct_eq(hash.as_bytes()).into()
            }
            StoredHash::Sha1(want) => {
                use sha1::Digest;
                let got = sha1::Sha1::digest(password);
                got.as_slice().ct_eq(want).into()
            }
            StoredHash::Plain(p) => password.ct_eq(p.as_bytes()).into(),
        }
    }
}

/// The users of one htpasswd file.
#[derive(Debug, Default)]
pub struct Users {
    by_name: HashMap<Box<str>, StoredHash>,
}

/// A line of an htpasswd file that could not be read.
#[derive(Debug, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number in the htpasswd file.
    pub line: usize,
    /// What is wrong.
    pub what: String,
}

impl Users {
    /// Parses an htpasswd file's text: `user:hash` per line; blank lines
    /// and `#` comments are skipped (as nginx does). Every bad line is
    /// reported.
    pub fn parse(text: &str) -> Result<Users, Vec<LineError>> {
        let mut by_name = HashMap::new();
        let mut errors = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, rest)) = line.split_once(':') else {
                errors.push(LineError {
                    line: i + 1,
                    what: "no `:` between the user name and the hash".into(),
                });
                continue;
            };
            // Apache's htpasswd -d may leave `user:hash:comment`; nginx
            // stops the hash at the next `:` too.
            let hash = rest.split(':').next().unwrap_or("");
            match StoredHash::parse(hash) {
                Ok(h) => {
                    by_name.insert(user.into(), h);
                }
                Err(what) => errors.push(LineError {
                    line: i + 1,
                    what: format!("user '{user}': {what}"),
                }),
            }
        }
        if errors.is_empty() {
            Ok(Users { by_name })
        } else {
            Err(errors)
        }
    }

    /// The stored hash of `user`.
    pub fn get(&self, user: &str) -> Option<&StoredHash> {
        self.by_name.get(user)
    }

    /// How many users.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True when the file named nobody.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The user name and password of an `Authorization: Basic …` value
/// (RFC 7617); `None` when it is not one.
pub fn basic_credentials(value: &[u8]) -> Option<(String, Vec<u8>)> {
    let v = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(raw[..colon].to_vec()).ok()?;
    Some((user, raw[colon + 1..].to_vec()))
}

/// MD5-crypt (Poul-Henning Kamp's FreeBSD algorithm), with `$1$` or
/// Apache's `$apr1$` magic: the one hash no maintained crate checks.
pub mod md5_crypt {
    use md5::{Digest, Md5};

    /// Apache's magic word.
    pub const APR1: &str = "$apr1$";
    /// The `crypt(3)` / `openssl passwd -1` magic word.
    pub const MD5: &str = "$1$";

    const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// The 22-character encoded digest of `password` with `salt` (at most
    /// 8 bytes are used) under `magic`.
    pub fn encode(password: &[u8], salt: &[u8], magic: &str) -> String {
        let salt = &salt[..salt.len().min(8)];
        let alt = {
            let mut h = Md5::new();
            h.update(password);
            h.update(salt);
            h.update(password);
            h.finalize()
        };
        let mut ctx = Md5::new();
        ctx.update(password);
        ctx.update(magic.as_bytes());
        ctx.update(salt);
        let mut left = password.len();
        while left > 0 {
            let n = left.min(16);
            ctx.update(&alt[..n]);
            left -= n;
        }
        // The algorithm's odd step: per bit of the length, a zero byte or
        // the password's first byte.
        let mut i = password.len();
        while i > 0 {
            if i & 1 == 1 {
                ctx.update([0u8]);
            } else {
                ctx.update(&password[..1]);
            }
            i >>= 1;
        }
        let mut digest = ctx.finalize();
        for round in 0..1000 {
            let mut h = Md5::new();
            if round & 1 == 1 {
                h.update(password);
            } else {
                h.update(digest);
            }
            if round % 3 != 0 {
                h.update(salt);
            }
            if round % 7 != 0 {
                h.update(password);
            }
            if round & 1 == 1 {
                h.update(digest);
            } else {
                h.update(password);
            }
            digest = h.finalize();
        }
        let d = digest;
        let mut out = String::with_capacity(22);
        let mut put = |v: u32, n: usize| {
            let mut v = v;
            for _ in 0..n {
                out.push(ITOA64[(v & 0x3f) as usize] as char);
                v >>= 6;
            }
        };
        for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
            put(
                (u32::from(d[a]) << 16) | (u32::from(d[b]) << 8) | u32::from(d[c]),
                4,
            );
        }
        put(u32::from(d[11]), 2);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made once with the real tools (the integration test makes its own):
    // `htpasswd -nbm u secret`, `openssl passwd -1 -salt abcdefgh secret`,
    // `openssl passwd -5/-6 -salt saltsalt secret`, `htpasswd -nbs u secret`,
    // `htpasswd -nbB -C 4 u secret`.
    const FILE: &str = "\
# a comment, then a blank line

apr1:$apr1$LB0u1t1u$qdQKA9.yDqfG2bTh8MI7S.
md5:$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1
sha256:$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA
sha512:$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1
sha1:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=
bcrypt:$2y$04$Y3ME0qbOHit00HIntH.AneJJTorLgSL.c9vIT.diC3ODoxN16alou
plain:{PLAIN}secret
";

    #[test]
    fn every_format_the_tools_write_is_read_and_checked() {
        let users = Users::parse(FILE).expect("parses");
        assert_eq!(users.len(), 7);
        for u in ["apr1", "md5", "sha256", "sha512", "sha1", "bcrypt", "plain"] {
            let h = users.get(u).expect(u);
            assert!(h.verify(b"secret"), "{u} takes the right password");
            assert!(!h.verify(b"Secret"), "{u} refuses a wrong one");
            assert!(!h.verify(b""), "{u} refuses an empty one");
        }
        assert!(users.get("nobody").is_none());
        assert!(users.get("bcrypt").is_some_and(StoredHash::is_slow));
        assert!(!users.get("apr1").is_some_and(StoredHash::is_slow));
    }

    #[test]
    fn md5_crypt_matches_the_reference_vectors() {
        // `openssl passwd -1 -salt 5pZSV9va password`, `-apr1 -salt lZL6V/ci`.
        assert_eq!(
            md5_crypt::encode(b"password", b"5pZSV9va", md5_crypt::MD5),
            "azfrPr6af3Fc7dLblQXVa0"
        );
        assert_eq!(
            md5_crypt::encode(b"password", b"lZL6V/ci", md5_crypt::APR1),
            "eIMz/iKDkbtys/uU7LEK00"
        );
    }

    #[test]
    fn bad_lines_are_reported_with_their_numbers() {
        let e = Users::parse("ok:{PLAIN}x\nno-colon\nd:abJnggxhB/yWI\nb:$2y$05$short\nz:$9$x\n")
            .expect_err("bad lines");
        let lines: Vec<usize> = e.iter().map(|l| l.line).collect();
        assert_eq!(lines, [2, 3, 4, 5]);
        assert!(e[1].what.contains("DES"), "{:?}", e[1]);
        assert!(e[2].what.contains("bcrypt"), "{:?}", e[2]);
        assert!(e[3].what.contains("does not read"), "{:?}", e[3]);
        assert!(format!("{:?}", StoredHash::parse("{PLAIN}x")).eq("Ok(plain)"));
    }

    #[test]
    fn basic_credentials_are_decoded() {
        // "alice:pa:ss" — the password may hold a colon.
        let (u, p) = basic_credentials(b"Basic YWxpY2U6cGE6c3M=").expect("basic");
        assert_eq!((u.as_str(), p.as_slice()), ("alice", &b"pa:ss"[..]));
        assert!(basic_credentials(b"basic  YWxpY2U6cGE6c3M= ").is_some());
        assert!(basic_credentials(b"Bearer abc").is_none());
        assert!(basic_credentials(b"Basic !!!").is_none());
        assert!(basic_credentials(b"Basic YWxpY2U=").is_none(), "no colon");
    }
}
