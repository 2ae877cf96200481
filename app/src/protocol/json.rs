//! The few questions the client-frame encoder asks of JSON.
//!
//! [`ClientFrame::encode_with`](super::ClientFrame::encode_with) is written
//! once against [`Json`]; the server and the tests run it over
//! `serde_json::Value`, the browser over its own `JSON.stringify`.

/// A parsed JSON value, as far as decoding frames needs one.
pub trait Json: Sized {
    fn parse(text: &str) -> Option<Self>;
    /// `text` as a JSON string literal, quotes and escapes included.
    fn quote(text: &str) -> String;
    /// The member `key` of an object; `None` for anything else.
    fn get(&self, key: &str) -> Option<Self>;
    fn string(&self) -> Option<String>;
    /// A non-negative integer (ids and counts, at most 2^53 in a browser).
    fn uint(&self) -> Option<u64>;
    fn boolean(&self) -> Option<bool>;
    fn array(&self) -> Option<Vec<Self>>;
    fn is_null(&self) -> bool;

    /// `get(key)` as a string.
    fn string_at(&self, key: &str) -> Option<String> {
        self.get(key)?.string()
    }

    /// `get(key)` as a non-negative integer.
    fn uint_at(&self, key: &str) -> Option<u64> {
        self.get(key)?.uint()
    }
}

impl Json for serde_json::Value {
    fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    fn quote(text: &str) -> String {
        serde_json::to_string(text).expect("a string always serializes")
    }

    fn get(&self, key: &str) -> Option<Self> {
        self.as_object()?.get(key).cloned()
    }

    fn string(&self) -> Option<String> {
        self.as_str().map(str::to_owned)
    }

    fn uint(&self) -> Option<u64> {
        self.as_u64()
    }

    fn boolean(&self) -> Option<bool> {
        self.as_bool()
    }

    fn array(&self) -> Option<Vec<Self>> {
        self.as_array().cloned()
    }

    fn is_null(&self) -> bool {
        self.is_null()
    }
}
