//! The SDK's one error type, and the `Context` extension that adds a sentence to any failure.

use std::fmt;

/// Why a handler failed the whole batch, or why an SDK call failed.
///
/// Returning `Err(error)` from a handler retries every message of the batch (with the queue's
/// backoff) and discards everything the handler sent; the error's message is recorded as the
/// invocation's reason.
///
/// `?` converts any [`std::error::Error`] into an `Error`, keeping its chain of sources in the
/// message. Anything else that is [`Display`](fmt::Display) becomes one with [`Error::new`], and
/// [`Context`] adds a sentence in front of a failure (and turns a `None` into one).
///
/// ```
/// use sluice_sdk::Error;
///
/// fn parse(text: &str) -> Result<u32, Error> {
///     let n: u32 = text.parse()?; // a `ParseIntError` becomes an `Error`
///     if n == 0 {
///         return Err(Error::new("zero is not allowed"));
///     }
///     Ok(n)
/// }
///
/// assert_eq!(parse("7").unwrap(), 7);
/// assert_eq!(parse("x").unwrap_err().to_string(), "invalid digit found in string");
/// assert_eq!(parse("0").unwrap_err().message(), "zero is not allowed");
/// ```
// `Error` deliberately does not implement `std::error::Error`: that is what lets the blanket
// `From<E: std::error::Error>` below coexist with the reflexive `From<Error> for Error`.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// An error with this message.
    ///
    /// ```
    /// let error = sluice_sdk::Error::new(format!("order {} has no lines", 42));
    /// assert_eq!(error.message(), "order 42 has no lines");
    /// ```
    pub fn new(message: impl fmt::Display) -> Self {
        Error {
            message: message.to_string(),
        }
    }

    /// The message, as the host will record it.
    ///
    /// ```
    /// assert_eq!(sluice_sdk::Error::new("boom").message(), "boom");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn into_message(self) -> String {
        self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

// `Result::unwrap` prints the `Debug` form; the plain message reads best there.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.message, f)
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Error { message }
    }
}

/// Adds context to a failure: `result.context("loading the order")?` turns an error `e` into
/// `"loading the order: e"`, and `option.context("no customer")?` turns `None` into an error.
///
/// ```
/// use sluice_sdk::{Context, Error};
///
/// fn amount(text: &str) -> Result<f64, Error> {
///     text.parse::<f64>().context("reading the amount")
/// }
/// assert_eq!(amount("x").unwrap_err().message(), "reading the amount: invalid float literal");
///
/// let missing: Option<&str> = None;
/// assert_eq!(missing.context("no `tenant` attribute").unwrap_err().message(), "no `tenant` attribute");
/// ```
pub trait Context<T> {
    /// Prefixes the failure with `context`.
    fn context(self, context: impl fmt::Display) -> Result<T, Error>;

    /// Like [`context`](Context::context), but builds the context only on failure.
    ///
    /// ```
    /// use sluice_sdk::Context;
    /// let id = 42;
    /// let result: Result<u8, _> = "300".parse::<u8>().with_context(|| format!("order {id}"));
    /// assert_eq!(result.unwrap_err().message(), "order 42: number too large to fit in target type");
    /// ```
    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T, Error>;
}

fn prefixed(context: impl fmt::Display, error: impl Into<Error>) -> Error {
    Error::new(format!("{context}: {}", error.into().message))
}

impl<T, E: std::error::Error> Context<T> for Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T, Error> {
        self.map_err(|e| prefixed(context, e))
    }

    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T, Error> {
        self.map_err(|e| prefixed(context(), e))
    }
}

impl<T> Context<T> for Result<T, Error> {
    fn context(self, context: impl fmt::Display) -> Result<T, Error> {
        self.map_err(|e| prefixed(context, e))
    }

    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T, Error> {
        self.map_err(|e| prefixed(context(), e))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl fmt::Display) -> Result<T, Error> {
        self.ok_or_else(|| Error::new(context))
    }

    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T, Error> {
        self.ok_or_else(|| Error::new(context()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn conversion_keeps_the_source_chain() {
        let error = Error::from(Outer(std::io::Error::other("inner")));
        assert_eq!(error.message(), "outer: inner");
    }

    #[test]
    fn question_mark_converts_std_errors() {
        fn f() -> Result<(), Error> {
            let bytes = vec![0xff];
            std::str::from_utf8(&bytes)?;
            Ok(())
        }
        assert!(f().unwrap_err().message().contains("invalid utf-8"));
    }

    #[test]
    fn context_stacks() {
        let result: Result<(), Error> = Err(Error::new("disk full"));
        let error = result.context("saving").context("handling").unwrap_err();
        assert_eq!(error.message(), "handling: saving: disk full");
    }
}
