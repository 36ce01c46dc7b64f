//! A wrapper for values that must never be printed.

use std::fmt;

/// A string that must never reach a log, an error or a panic message:
/// `Debug` and `Display` print `***`. Read the value with [`Secret::expose`]
/// only where it is used (signing, sending).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Also remembered for redaction: should the value come back in any
    /// log line or start-up error (an API echoing it), it is cut out there.
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        crate::redact::remember(&value);
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn never_prints_its_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(secret.expose(), "hunter2");
    }
}
