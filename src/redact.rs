//! The last line of defence for secrets: every secret the process holds is
//! remembered here (by [`crate::secret::Secret::new`]), and every log line
//! and start-up error passes through [`redact`] before it is written, so a
//! secret echoed back by an API, an error from a library or a debug dump is
//! cut out whatever words surround it and however it was encoded: as is,
//! percent-encoded (upper or lower hex, `+` for space), percent-encoded
//! twice, or JSON-escaped.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

use aho_corasick::AhoCorasick;

/// Shorter values are not worth the false matches (test fixtures use
/// one-letter secrets; real ones are 30 characters and more).
const MIN_LEN: usize = 8;
/// Distinct secrets kept: the newest win. Temporary credentials change
/// every hour or so, and two per account are current at once.
const MAX_SECRETS: usize = 256;

pub const MASK: &str = "***";

/// Known secrets and a matcher for all their encodings.
struct Registry {
    cap: usize,
    known: RwLock<Known>,
}

struct Known {
    /// The secrets, oldest first.
    secrets: VecDeque<String>,
    /// Every encoding of every secret, or none when nothing is known.
    matcher: Option<Arc<AhoCorasick>>,
}

static REGISTRY: Registry = Registry::new(MAX_SECRETS);

/// Remembers a secret, so that it is cut from every line written from now on.
pub fn remember(secret: &str) {
    REGISTRY.remember(secret);
}

/// `text` with every known secret, in every encoding, replaced by `***`.
pub fn redact(text: &str) -> Cow<'_, str> {
    REGISTRY.redact(text)
}

impl Registry {
    const fn new(cap: usize) -> Self {
        Registry {
            cap,
            known: RwLock::new(Known {
                secrets: VecDeque::new(),
                matcher: None,
            }),
        }
    }

    fn remember(&self, secret: &str) {
        if secret.len() < MIN_LEN {
            return;
        }
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        if known.secrets.iter().any(|s| s == secret) {
            return;
        }
        if known.secrets.len() >= self.cap {
            known.secrets.pop_front();
        }
        known.secrets.push_back(secret.to_string());
        let mut patterns: Vec<String> = known.secrets.iter().flat_map(|s| encodings(s)).collect();
        patterns.sort();
        patterns.dedup();
        known.matcher = AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok()
            .map(Arc::new);
    }

    fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let matcher = {
            let known = self.known.read().unwrap_or_else(|e| e.into_inner());
            match &known.matcher {
                Some(m) => m.clone(),
                None => return Cow::Borrowed(text),
            }
        };
        if !matcher.is_match(text) {
            return Cow::Borrowed(text);
        }
        let masks = vec![MASK; matcher.patterns_len()];
        Cow::Owned(matcher.replace_all(text, &masks))
    }
}

/// The forms a secret takes in URLs, form bodies, JSON and error echoes.
fn encodings(secret: &str) -> Vec<String> {
    let upper = percent_encode(secret, true);
    let lower = percent_encode(secret, false);
    let form = upper.replace("%20", "+");
    let twice = percent_encode(&upper, true);
    let twice_lower = percent_encode(&lower, false);
    let json = secret.replace('/', "\\/");
    vec![
        secret.to_string(),
        upper,
        lower,
        form,
        twice,
        twice_lower,
        json,
    ]
}

/// RFC 3986: everything but unreserved characters as `%XX`.
fn percent_encode(text: &str, upper: bool) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// A writer for the log layers: each event is collected whole, redacted,
/// and written to stderr in one go (so lines from threads never mix).
pub struct RedactingStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(Vec::with_capacity(256))
    }
}

/// One event's bytes, written (redacted) when dropped.
pub struct LineWriter(Vec<u8>);

impl std::io::Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        use std::io::Write;
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr().lock().write_all(redact(&text).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The process-wide registry is shared by tests running at once: each
    // test uses secrets of its own, or a registry of its own.

    #[test]
    fn every_encoding_is_cut_whatever_the_words_around_it() {
        let token = "CAIS/tok+en=Zz9 x";
        remember(token);
        for line in [
            "error=\"echo CAIS/tok+en=Zz9 x in an odd wording\"",
            "url=https://h/?SecurityToken=CAIS%2Ftok%2Ben%3DZz9%20x&x=1",
            "form=SecurityToken=CAIS%2Ftok%2Ben%3DZz9+x",
            "lower=CAIS%2ftok%2ben%3dZz9%20x",
            "twice=CAIS%252Ftok%252Ben%253DZz9%2520x",
            "json={\"t\":\"CAIS\\/tok+en=Zz9 x\"}",
        ] {
            let out = redact(line);
            assert!(out.contains(MASK), "{line} -> {out}");
            for piece in ["tok", "Zz9"] {
                assert!(!out.contains(piece), "{line} -> {out}");
            }
        }
    }

    #[test]
    fn lines_without_secrets_are_untouched_and_short_values_are_not_secrets() {
        remember("abc");
        assert_eq!(redact("abc def"), "abc def");
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_newest_secrets_are_kept_when_the_bound_is_reached() {
        let registry = Registry::new(4);
        for i in 0..6 {
            registry.remember(&format!("bound-secret-{i:05}"));
        }
        for i in 2..6 {
            assert_eq!(registry.redact(&format!("bound-secret-{i:05}")), MASK);
        }
        assert_eq!(registry.redact("bound-secret-00001"), "bound-secret-00001");
    }
}
