//! Any bytes: the Dockerfile parser, the lowering and `convert` return a
//! result or diagnostics, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::frontend::dockerfile;
use strata::ir::EmptyResolver;
use strata::frontend::LowerOptions;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = dockerfile::parse("Dockerfile", text);
    let _ = dockerfile::load("Dockerfile", text, &LowerOptions::default(), &EmptyResolver);
    let _ = dockerfile::convert("Dockerfile", text);
});
