// A small program with real dependencies (serde with derive, serde_json),
// vendored at bench set-up and built offline.
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug)]
struct Greeting {
    text: String,
    count: u32,
}

fn main() {
    let g = Greeting {
        text: "hello from strata-bench".to_string(),
        count: 1,
    };
    let json = serde_json::to_string(&g).expect("serialize");
    let back: Greeting = serde_json::from_str(&json).expect("parse");
    println!("{json} {}", back.count);
}
