//! The build side of planning is linear in the number of steps: a stage of
//! many ENV steps plans and assembles in time proportional to its length
//! (the frontends' lowering is measured by `cargo bench --bench parse`).

use std::time::{Duration, Instant};

use strata::build::{self, BuildOptions};
use strata::ir::{BaseOp, BaseRef, BuildGraph, Edge, MetaOp, Op, Stage, Step, Target};
use strata::store::Store;

/// `FROM scratch` and `n` ENV steps, each setting a new variable.
fn env_graph(n: usize) -> BuildGraph {
    let mut g = BuildGraph::default();
    let step = |op| Step {
        stage: "s".into(),
        op,
        span: None,
    };
    let first = g.add_step(step(Op::Base(BaseOp {
        base: BaseRef::Scratch,
        platform: None,
    })));
    let mut last = first;
    for i in 0..n {
        let e = g.add_step(step(Op::Meta(MetaOp::Env(vec![(
            format!("V{i}"),
            i.to_string(),
        )]))));
        g.add_edge(last, e, Edge::Parent);
        last = e;
    }
    g.stages.push(Stage {
        name: "s".into(),
        first: Some(first),
        last,
        span: None,
    });
    g.targets.push(Target {
        name: "s".into(),
        stage: "s".into(),
        node: last,
        tags: vec![],
        platform: None,
        platforms: vec![],
    });
    g
}

/// Plan + execute (assemble, write the image) of `n` ENV steps.
fn time(n: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("root")).unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    let graph = env_graph(n);
    let opts = BuildOptions::new(&ctx, "scale".into(), None);
    let start = Instant::now();
    let plan = build::plan(&store, &graph, &opts).unwrap();
    eprintln!("{n} ENV steps: plan {:?}", start.elapsed());
    assert_eq!(plan.steps.len(), n + 1);
    let report = build::execute(&store, &graph, plan, &opts, &|_| {}).unwrap();
    let took = start.elapsed();
    let img = strata::oci::load_image(&store, &report.images[0].manifest.digest).unwrap();
    let env = img.config.config.env.unwrap();
    assert_eq!(env.len(), n + 1, "PATH and every variable");
    assert_eq!(env.last().unwrap(), &format!("V{}={}", n - 1, n - 1));
    took
}

#[test]
fn planning_and_assembling_many_env_steps_is_linear() {
    let small = 10_000;
    let t1 = time(small).max(Duration::from_millis(1));
    let t4 = time(4 * small);
    eprintln!("{small} ENV steps: {t1:?}; {}: {t4:?}", 4 * small);
    // Linear gives about 4x; quadratic about 16x. Leave room for a busy machine.
    assert!(
        t4 < t1 * 9,
        "4x the steps took {:.1}x the time",
        t4.as_secs_f64() / t1.as_secs_f64()
    );
}

/// `STRATA_SCALE_STEPS=200000 cargo test --release --test plan_scale --
/// --nocapture` prints the time for one size (for the figure).
#[test]
fn time_one_size_on_request() {
    if let Some(n) = std::env::var("STRATA_SCALE_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        eprintln!("{n} ENV steps: plan + execute {:?}", time(n));
    }
}
