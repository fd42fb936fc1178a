//! Appending a custom section to a component: it changes the bytes, so the digest and the
//! compilation, and nothing else.

use wasm_encoder::{CustomSection, Section};

/// `wasm` with a custom section naming `name` appended: a distinct upload (its own digest, so
/// its own compilation), as every real function is, that behaves the same.
pub(crate) fn distinct(wasm: &[u8], name: &str) -> Vec<u8> {
    let mut out = wasm.to_vec();
    out.extend(custom_section("sluice-bench", name.as_bytes()));
    out
}

/// A WebAssembly custom section (id 0) named `name` holding `payload`.
pub(crate) fn custom_section(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut section = Vec::new();
    CustomSection {
        name: name.into(),
        data: payload.into(),
    }
    .append_to(&mut section);
    section
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_section_is_its_id_length_name_and_payload() {
        let section = custom_section("ab", &[7; 200]);
        // id 0, then the length 203 as LEB128 (two bytes), the name's length and bytes.
        assert_eq!(&section[..6], &[0, 0xcb, 0x01, 2, b'a', b'b']);
        assert_eq!(section.len(), 3 + 203);
    }
}
