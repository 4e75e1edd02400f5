//! Choosing wasm or Linux for a container, by the rules of ARCHITECTURE.md, first match wins:
//! the RuntimeClass handler's kind, then annotations (container before pod), then the image's
//! media types or platform, then whether the entrypoint file is wasm.

use std::collections::HashMap;

use crate::config::HandlerKind;
use crate::image::store::ImageKind;

/// crun's annotation: `compat` (all wasm) or `compat-smart` (wasm when the entrypoint is).
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
/// crun's handler annotation; `wasm` selects wasm.
pub const HANDLER_ANNOTATION: &str = "run.oci.handler";

/// What the rules decided, and which rule decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Run as wasm.
    Wasm(&'static str),
    /// Run as a Linux container.
    Linux(&'static str),
    /// Wasm when the image's entrypoint file is a wasm binary, else Linux.
    WasmIfEntrypoint(&'static str),
}

/// Applies the rules. The last rule (the entrypoint's magic) needs the image's files, so it
/// is returned as [`Choice::WasmIfEntrypoint`] for the caller to settle.
pub fn choose(
    handler: HandlerKind,
    container_annotations: &HashMap<String, String>,
    pod_annotations: &HashMap<String, String>,
    image: ImageKind,
) -> Choice {
    match handler {
        HandlerKind::Wasm => return Choice::Wasm("the runtime handler is of kind wasm"),
        HandlerKind::Linux => return Choice::Linux("the runtime handler is of kind linux"),
        HandlerKind::Auto => {}
    }
    for annotations in [container_annotations, pod_annotations] {
        match annotations.get(VARIANT_ANNOTATION).map(String::as_str) {
            Some("compat") => return Choice::Wasm("annotation module.wasm.image/variant=compat"),
            Some("compat-smart") => {
                return Choice::WasmIfEntrypoint(
                    "annotation module.wasm.image/variant=compat-smart",
                );
            }
            _ => {}
        }
        if annotations.get(HANDLER_ANNOTATION).map(String::as_str) == Some("wasm") {
            return Choice::Wasm("annotation run.oci.handler=wasm");
        }
    }
    if image == ImageKind::Wasm {
        return Choice::Wasm("the image's media types or platform are wasm");
    }
    Choice::WasmIfEntrypoint("the image's entrypoint file")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_rule_and_its_precedence() {
        let none = annotations(&[]);
        let compat = annotations(&[(VARIANT_ANNOTATION, "compat")]);
        let smart = annotations(&[(VARIANT_ANNOTATION, "compat-smart")]);
        let oci = annotations(&[(HANDLER_ANNOTATION, "wasm")]);
        let (auto, linux_image, wasm_image) =
            (HandlerKind::Auto, ImageKind::Linux, ImageKind::Wasm);
        // 1. The handler wins over everything.
        assert!(matches!(
            choose(HandlerKind::Wasm, &none, &none, linux_image),
            Choice::Wasm(_)
        ));
        assert!(matches!(
            choose(HandlerKind::Linux, &compat, &compat, wasm_image),
            Choice::Linux(_)
        ));
        // 2. Annotations, the container's before the pod's, over the image.
        assert!(matches!(
            choose(auto, &compat, &none, linux_image),
            Choice::Wasm(_)
        ));
        assert!(matches!(
            choose(auto, &none, &compat, linux_image),
            Choice::Wasm(_)
        ));
        assert!(matches!(
            choose(auto, &none, &oci, linux_image),
            Choice::Wasm(_)
        ));
        assert_eq!(
            choose(auto, &smart, &compat, wasm_image),
            Choice::WasmIfEntrypoint("annotation module.wasm.image/variant=compat-smart")
        );
        // 3. The image.
        assert!(matches!(
            choose(auto, &none, &none, wasm_image),
            Choice::Wasm(_)
        ));
        // 4. and 5. The entrypoint's magic, else Linux.
        assert_eq!(
            choose(auto, &none, &none, linux_image),
            Choice::WasmIfEntrypoint("the image's entrypoint file")
        );
        let other = annotations(&[(VARIANT_ANNOTATION, "none"), (HANDLER_ANNOTATION, "crun")]);
        assert!(matches!(
            choose(auto, &other, &none, linux_image),
            Choice::WasmIfEntrypoint(_)
        ));
    }
}
