//! `basic_auth_users`: bcrypt hashes checked at start-up; a login checked
//! off the async workers, one bcrypt at a time (each costs tens of
//! milliseconds of CPU, seconds at high costs), its result cached under a
//! key that cannot collide (CVE-2022-46146), and an unknown user checked
//! against a fixed hash so that timing does not tell which users exist.
//! The password never reaches a log, an error or `Debug`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::sync::Semaphore;

/// The bcrypt hash of "fakepassword", as the toolkit has it: what an
/// unknown user's password is compared with (the result is then forced to
/// a refusal).
pub const FAKE_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// Cached results; when full, about a tenth is dropped at random.
pub const CACHE_SIZE: usize = 100;

/// bcrypt reads at most 72 bytes; Go refuses longer passwords rather
/// than comparing a prefix, and so do we.
const MAX_PASSWORD: usize = 72;

/// Whether `hash` is a bcrypt hash the server can check (the toolkit runs
/// `bcrypt.Cost` on each at start-up). Hashes are not secrets; they may
/// be named.
pub fn check_hash(hash: &str) -> Result<(), String> {
    if hash.len() < 59 {
        // Go's wording, which users search for.
        return Err("hashedSecret too short to be a bcrypted password".into());
    }
    let parts: bcrypt::HashParts = hash
        .parse()
        .map_err(|e| format!("not a bcrypt hash ({e})"))?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!("bcrypt cost {cost} is outside 4 to 31"));
    }
    Ok(())
}

/// The login checker, shared by every connection.
pub struct BasicAuth {
    cache: Mutex<HashMap<String, bool>>,
    /// One bcrypt at a time, as the toolkit's `bcryptMtx`: a burst of
    /// logins queues here instead of taking every blocking thread.
    bcrypt: Arc<Semaphore>,
}

impl Default for BasicAuth {
    fn default() -> Self {
        BasicAuth {
            cache: Mutex::new(HashMap::new()),
            bcrypt: Arc::new(Semaphore::new(1)),
        }
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The cache's keys hold passwords (hex): never printed.
        f.write_str("BasicAuth")
    }
}

/// `user` and `password` from an `Authorization: Basic …` header, as Go's
/// `Request.BasicAuth` reads it.
fn credentials(header: &hyper::header::HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = header.as_bytes();
    if value.len() < 6 || !value[..6].eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&value[6..])
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

impl BasicAuth {
    /// Whether the request's `Authorization` header names a user of `users`
    /// with the right password.
    pub async fn allows(
        &self,
        users: &BTreeMap<String, String>,
        header: Option<&hyper::header::HeaderValue>,
    ) -> bool {
        let Some((user, password)) = header.and_then(credentials) else {
            return false;
        };
        let known = std::str::from_utf8(&user)
            .ok()
            .and_then(|name| users.get(name));
        let hash = known.map_or(FAKE_HASH, String::as_str).to_string();
        // Each part hex-encoded, then joined: `alice` + `$2y$…` can no
        // longer collide with `alice$2y$…` + `` (CVE-2022-46146).
        let key = format!("{}:{}:{}", hex(&user), hex(hash.as_bytes()), hex(&password));
        if let Some(&cached) = self.lock().get(&key) {
            return cached;
        }
        let matches = self.verify(password, hash).await;
        let allowed = known.is_some() && matches;
        self.remember(key, allowed);
        allowed
    }

    /// bcrypt off the async workers, one at a time.
    async fn verify(&self, password: Vec<u8>, hash: String) -> bool {
        let Ok(permit) = self.bcrypt.clone().acquire_owned().await else {
            return false;
        };
        if password.len() > MAX_PASSWORD {
            return false;
        }
        // The permit moves into the task: a client that hangs up does not
        // let a second bcrypt start beside the one still running.
        tokio::task::spawn_blocking(move || {
            let _one_at_a_time = permit;
            bcrypt::verify(&password, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        // A panic elsewhere while holding it leaves a map of booleans: fine.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, key: String, allowed: bool) {
        let mut cache = self.lock();
        if cache.len() >= CACHE_SIZE {
            let drop: Vec<String> =
                fastrand::choose_multiple(cache.keys().cloned(), CACHE_SIZE / 10);
            for key in drop {
                cache.remove(&key);
            }
        }
        cache.insert(key, allowed);
    }

    /// Entries cached (tests).
    #[cfg(test)]
    pub fn cached(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAROL: &str = "$2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu";

    fn basic(user: &str, password: &str) -> hyper::header::HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        hyper::header::HeaderValue::from_str(&format!("Basic {token}")).expect("ascii")
    }

    fn users() -> BTreeMap<String, String> {
        [("carol".to_string(), CAROL.to_string())].into()
    }

    #[test]
    fn hashes_are_checked() {
        assert_eq!(
            check_hash("doe").unwrap_err(),
            "hashedSecret too short to be a bcrypted password"
        );
        assert!(check_hash(CAROL).is_ok());
        assert!(check_hash(FAKE_HASH).is_ok());
        assert!(check_hash(&CAROL.replace("$2y$10$", "$9z$10$")).is_err());
    }

    #[tokio::test]
    async fn right_and_wrong_passwords_and_unknown_users() {
        let auth = BasicAuth::default();
        let users = users();
        assert!(auth.allows(&users, Some(&basic("carol", "carol123"))).await);
        assert!(!auth.allows(&users, Some(&basic("carol", "carol124"))).await);
        assert!(
            !auth
                .allows(&users, Some(&basic("nobody", "fakepassword")))
                .await
        );
        assert!(!auth.allows(&users, None).await);
        // Cached: the same answers again.
        assert!(auth.allows(&users, Some(&basic("carol", "carol123"))).await);
        assert!(!auth.allows(&users, Some(&basic("carol", "carol124"))).await);
        assert_eq!(auth.cached(), 3);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let auth = BasicAuth::default();
        for i in 0..250 {
            auth.remember(format!("k{i}"), i % 2 == 0);
            assert!(auth.cached() <= CACHE_SIZE);
        }
        assert!(auth.cached() > CACHE_SIZE - CACHE_SIZE / 10 - 1);
    }

    #[test]
    fn basic_header_parsing() {
        let (user, password) = credentials(&basic("a:b", "c")).expect("parsed");
        // The first colon splits, as Go does.
        assert_eq!(
            (user.as_slice(), password.as_slice()),
            (&b"a"[..], &b"b:c"[..])
        );
        let lower = hyper::header::HeaderValue::from_static("basic YTpi");
        assert!(credentials(&lower).is_some());
        let bearer = hyper::header::HeaderValue::from_static("Bearer YTpi");
        assert!(credentials(&bearer).is_none());
    }

    #[test]
    fn debug_never_shows_the_cache() {
        let auth = BasicAuth::default();
        auth.remember("secret-key".into(), true);
        assert_eq!(format!("{auth:?}"), "BasicAuth");
    }
}
