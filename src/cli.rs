//! Command-line interface (skeleton).

pub fn main() -> i32 {
    eprintln!("strata: not built yet");
    2
}
