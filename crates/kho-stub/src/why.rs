//! `Why`: a one-line reason that converts from every error the stub meets.
//!
//! Closures handed to library visitors (`VmallocArea::for_each_mut`) must
//! return an error type the library can convert its own errors into; the
//! stub's reasons are plain strings, so this wraps one.

use alloc::format;
use alloc::string::String;

/// A reason, as text.
#[derive(Debug)]
pub struct Why(pub String);

impl From<String> for Why {
    fn from(s: String) -> Why {
        Why(s)
    }
}

impl From<&str> for Why {
    fn from(s: &str) -> Why {
        Why(String::from(s))
    }
}

impl From<kho_vmalloc::Error> for Why {
    fn from(e: kho_vmalloc::Error) -> Why {
        Why(format!("{e}"))
    }
}

impl From<Why> for String {
    fn from(w: Why) -> String {
        w.0
    }
}
