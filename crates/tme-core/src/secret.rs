//! A wrapper for values that must never reach a log, an error message or a config dump.
//!
//! This module owns [`Secret`], whose `Debug`, `Display` and default `Serialize` all write
//! `[redacted]`; the value is reached only through [`Secret::expose`], so every place that
//! reads a secret is easy to find. It must not compare secrets (that needs constant time:
//! see `password::constant_time_eq`) and does not wipe memory on drop: doing that without
//! `unsafe` or an extra crate is not reliable, and copies made while the value was built
//! (a `String` growing, a parser's buffer) would escape it anyway.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What `Debug`, `Display` and `Serialize` write instead of the value.
pub const REDACTED: &str = "[redacted]";

/// A value that is not printed, logged or serialised by accident.
///
/// - `Debug` and `Display` write `[redacted]`.
/// - `Deserialize` is transparent: a config field `password = "hunter2"` reads straight
///   into a `Secret<String>`.
/// - `Serialize` writes `[redacted]`, so dumping a loaded configuration never leaks. To
///   write the real value, on purpose, mark the field
///   `#[serde(serialize_with = "Secret::serialize_exposed")]`.
/// - There is deliberately no `PartialEq`: comparing secrets with `==` leaks timing.
#[derive(Clone, Default)]
pub struct Secret<T> {
    value: T,
}

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret { value }
    }

    /// The secret value. Every call is a place where the secret is used: keep them few.
    pub fn expose(&self) -> &T {
        &self.value
    }

    /// Unwraps the secret value.
    pub fn into_exposed(self) -> T {
        self.value
    }
}

impl<T: Serialize> Secret<T> {
    /// Serialises the real value. For use as
    /// `#[serde(serialize_with = "Secret::serialize_exposed")]` on a field that must be
    /// written out, such as a generated credential saved to a file only its owner reads.
    pub fn serialize_exposed<S: Serializer>(
        secret: &Secret<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        secret.value.serialize(serializer)
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret::new(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(REDACTED)
    }
}

impl<T> Serialize for Secret<T> {
    /// Writes `[redacted]`, whatever the value; see [`Secret::serialize_exposed`].
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Settings {
        user: String,
        password: Secret<String>,
        #[serde(serialize_with = "Secret::serialize_exposed")]
        token: Secret<String>,
    }

    fn load() -> Settings {
        let text = "user = \"alice\"\npassword = \"hunter2\"\ntoken = \"t0k3n\"\n";
        match toml::from_str(text) {
            Ok(settings) => settings,
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn debug_and_display_are_redacted() {
        let settings = load();
        assert_eq!(settings.password.expose(), "hunter2");
        expect![[r#"Settings { user: "alice", password: [redacted], token: [redacted] }"#]]
            .assert_eq(&format!("{settings:?}"));
        assert_eq!(settings.password.to_string(), "[redacted]");
        assert_eq!(format!("{:#?}", Secret::new(42)), "[redacted]");
    }

    #[test]
    fn serialize_redacts_unless_asked() {
        let written = toml::to_string(&load()).map_err(|error| error.to_string());
        expect![[r#"
            Ok(
                "user = \"alice\"\npassword = \"[redacted]\"\ntoken = \"t0k3n\"\n",
            )
        "#]]
        .assert_debug_eq(&written);
    }

    #[test]
    fn clone_and_unwrap() {
        let secret = Secret::from(String::from("s3cret"));
        let copy = secret.clone();
        assert_eq!(copy.into_exposed(), "s3cret");
        assert_eq!(secret.expose(), "s3cret");
    }
}
