//! What an upload imports and exports, read from its top-level sections before anything is
//! compiled, so that a component Sluice could never run is refused in milliseconds instead of
//! after a compile that can take many seconds for a large component.
//!
//! Names and kinds are read here; nested modules and components (the code) are skipped unread.
//! For the imports' types, [`Surface::imports_only`] is a component made of the upload's own
//! leading type, import and alias sections, byte for byte, and nothing else: it has no code, so
//! wasmtime compiles it in a moment, and the real linker then checks every import in it, names
//! and types, exactly as it would check the upload's.

use std::ops::Range;

use wasm_encoder::{RawSection, Section};
use wasmparser::{Chunk, ComponentExternalKind, ComponentTypeRef, Parser, Payload};

/// An import or export at the top of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Item {
    pub(super) name: String,
    pub(super) kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Module,
    Func,
    Value,
    Type,
    Instance,
    Component,
}

impl Kind {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Kind::Module => "a core module",
            Kind::Func => "a function",
            Kind::Value => "a value",
            Kind::Type => "a type",
            Kind::Instance => "an instance",
            Kind::Component => "a component",
        }
    }
}

/// The top-level imports and exports of a component, in the order they appear.
#[derive(Debug, Default)]
pub(super) struct Surface {
    pub(super) imports: Vec<Item>,
    pub(super) exports: Vec<Item>,
    /// The leading type, import and alias sections: (section id, content range in the upload).
    leading: Vec<(u8, Range<usize>)>,
    /// How many imports come after the leading sections (and so are not in `imports_only`).
    pub(super) imports_after_leading: usize,
}

const ALIAS_SECTION: u8 = 6;
const TYPE_SECTION: u8 = 7;
const IMPORT_SECTION: u8 = 10;

/// Reads the imports and exports of the component in `wasm` without validating or compiling it.
/// Fails on bytes that cannot be parsed (the message comes from `wasmparser`).
pub(super) fn read(wasm: &[u8]) -> Result<Surface, String> {
    let mut surface = Surface::default();
    let mut parser = Parser::new(0);
    let mut data = wasm;
    // Toolchains put a component's imports (with the types and aliases they use) first; the
    // leading run of such sections ends at the first section of any other kind.
    let mut leading = true;
    loop {
        let payload = match parser.parse(data, true).map_err(|e| e.to_string())? {
            Chunk::Parsed { consumed, payload } => {
                data = &data[consumed..];
                payload
            }
            // Not possible with `eof = true`: the parser reports truncation as an error.
            Chunk::NeedMoreData(_) => return Err("unexpected end of the component".to_owned()),
        };
        match payload {
            Payload::Version { .. } | Payload::CustomSection(_) => {}
            Payload::ComponentTypeSection(reader) if leading => {
                surface.leading.push((TYPE_SECTION, reader.range()));
            }
            Payload::ComponentAliasSection(reader) if leading => {
                surface.leading.push((ALIAS_SECTION, reader.range()));
            }
            Payload::ComponentImportSection(reader) => {
                if leading {
                    surface.leading.push((IMPORT_SECTION, reader.range()));
                }
                for import in reader {
                    let import = import.map_err(|e| e.to_string())?;
                    let kind = match import.ty {
                        ComponentTypeRef::Module(_) => Kind::Module,
                        ComponentTypeRef::Func(_) => Kind::Func,
                        ComponentTypeRef::Value(_) => Kind::Value,
                        ComponentTypeRef::Type(_) => Kind::Type,
                        ComponentTypeRef::Instance(_) => Kind::Instance,
                        ComponentTypeRef::Component(_) => Kind::Component,
                    };
                    surface.imports.push(Item {
                        name: import.name.name.to_owned(),
                        kind,
                    });
                    if !leading {
                        surface.imports_after_leading += 1;
                    }
                }
            }
            Payload::ComponentExportSection(reader) => {
                leading = false;
                for export in reader {
                    let export = export.map_err(|e| e.to_string())?;
                    let kind = match export.kind {
                        ComponentExternalKind::Module => Kind::Module,
                        ComponentExternalKind::Func => Kind::Func,
                        ComponentExternalKind::Value => Kind::Value,
                        ComponentExternalKind::Type => Kind::Type,
                        ComponentExternalKind::Instance => Kind::Instance,
                        ComponentExternalKind::Component => Kind::Component,
                    };
                    surface.exports.push(Item {
                        name: export.name.name.to_owned(),
                        kind,
                    });
                }
            }
            // Nested modules and components (where the code is) are skipped, not parsed: the
            // parser has already moved past them, the bytes are dropped here.
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                leading = false;
                data = data
                    .get(unchecked_range.len()..)
                    .ok_or_else(|| "unexpected end of the component".to_owned())?;
            }
            Payload::End(_) => return Ok(surface),
            _ => leading = false,
        }
    }
}

impl Surface {
    /// A component with the upload's leading type, import and alias sections and nothing else.
    /// Every index in those sections points at something before it, so the result is valid
    /// whenever the upload is; a linker can instantiate it exactly when it provides each of
    /// those imports with the right type.
    pub(super) fn imports_only(&self, wasm: &[u8]) -> Vec<u8> {
        let mut out = b"\0asm\x0d\x00\x01\x00".to_vec();
        for (id, range) in &self.leading {
            RawSection {
                id: *id,
                data: &wasm[range.clone()],
            }
            .append_to(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, kind: Kind) -> Item {
        Item {
            name: name.to_owned(),
            kind,
        }
    }

    #[test]
    fn reads_top_level_imports_and_exports_only() {
        let wasm = wat::parse_str(
            r#"(component
                 (import "acme:db/query@1.0.0" (instance (export "run" (func))))
                 (import "log" (func))
                 (component $inner
                   (import "hidden:inner/thing" (instance))
                   (core module $m (func (export "f")))
                   (core instance $i (instantiate $m))
                   (func (export "inner") (canon lift (core func $i "f"))))
                 (core module $m (func (export "f")))
                 (core instance $i (instantiate $m))
                 (func (export "handle") (canon lift (core func $i "f")))
                 (export "m" (core module $m)))"#,
        )
        .unwrap();
        let surface = read(&wasm).unwrap();
        assert_eq!(
            surface.imports,
            [
                item("acme:db/query@1.0.0", Kind::Instance),
                item("log", Kind::Func)
            ]
        );
        let mut exports = surface.exports.clone();
        exports.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            exports,
            [item("handle", Kind::Func), item("m", Kind::Module)]
        );
        assert_eq!(surface.imports_after_leading, 0);
    }

    #[test]
    fn damaged_bytes_are_an_error() {
        let wasm = wat::parse_str("(component (core module $m (func (export \"f\"))))").unwrap();
        assert!(read(&wasm[..wasm.len() - 3]).is_err());
    }

    #[test]
    fn imports_only_keeps_the_imports_with_their_types_and_drops_the_code() {
        let wasm = wat::parse_str(
            r#"(component
                 (import "wasi:io/error@0.2.0" (instance $error
                   (export "error" (type (sub resource)))))
                 (alias export $error "error" (type $error-type))
                 (import "wasi:io/streams@0.2.0" (instance
                   (export "error" (type (eq $error-type)))
                   (export "f" (func (param "x" u32)))))
                 (core module $m (func (export "f")))
                 (core instance $i (instantiate $m))
                 (func (export "handle") (canon lift (core func $i "f")))
                 (import "late:one/thing" (instance)))"#,
        )
        .unwrap();
        let surface = read(&wasm).unwrap();
        assert_eq!(surface.imports.len(), 3);
        assert_eq!(surface.imports_after_leading, 1);
        let probe = surface.imports_only(&wasm);
        let probed = read(&probe).unwrap();
        assert_eq!(
            probed.imports,
            [
                item("wasi:io/error@0.2.0", Kind::Instance),
                item("wasi:io/streams@0.2.0", Kind::Instance)
            ]
        );
        assert!(probed.exports.is_empty());
        assert!(probe.len() < wasm.len());
        wasmparser::Validator::new()
            .validate_all(&probe)
            .expect("the probe is a valid component");
    }
}
