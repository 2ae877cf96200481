//! [`Json`] over the browser's own `JSON.parse`, so the page runs the very
//! decoder the cargo tests cover without shipping serde_json's parser (and
//! the float formatting its errors drag in) in its wasm.

use js_sys::{Array, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};

use crate::protocol::Json;

/// Integers above this lose precision as JavaScript numbers.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// A value parsed by `JSON.parse`.
pub struct JsJson(JsValue);

impl Json for JsJson {
    fn parse(text: &str) -> Option<Self> {
        JSON::parse(text).ok().map(Self)
    }

    fn quote(text: &str) -> String {
        JSON::stringify(&JsValue::from_str(text))
            .ok()
            .and_then(|quoted| quoted.as_string())
            .unwrap_or_else(|| "\"\"".to_owned())
    }

    fn get(&self, key: &str) -> Option<Self> {
        if !self.0.is_object() || Array::is_array(&self.0) {
            return None;
        }
        let value = Reflect::get(&self.0, &JsValue::from_str(key)).ok()?;
        (!value.is_undefined()).then_some(Self(value))
    }

    fn string(&self) -> Option<String> {
        self.0.as_string()
    }

    fn uint(&self) -> Option<u64> {
        let number = self.0.as_f64()?;
        (number.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER).contains(&number))
            .then_some(number as u64)
    }

    fn boolean(&self) -> Option<bool> {
        self.0.as_bool()
    }

    fn array(&self) -> Option<Vec<Self>> {
        let array = self.0.dyn_ref::<Array>()?;
        Some(array.iter().map(Self).collect())
    }

    fn is_null(&self) -> bool {
        self.0.is_null()
    }
}
