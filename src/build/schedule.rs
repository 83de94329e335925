//! The scheduler: a generic dependency-counting runner on a rayon pool.
//!
//! Invariants:
//! - A node starts only once every one of its dependencies has finished.
//! - At most `jobs` nodes run at once; ready nodes start in the given order,
//!   so `jobs = 1` is deterministic.
//! - After the first failure no new node starts; running nodes finish, and
//!   the first error is returned.
//! - A node whose work panics is a failure like any other (the error
//!   `panicked` makes of its message): the panic is caught on its worker,
//!   so the scheduler never waits for a result that will not come.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, mpsc};

use crate::error::{Error, Result};

/// The results of finished nodes, readable by running ones.
pub struct Finished<N, T> {
    map: Mutex<HashMap<N, T>>,
}

impl<N: Eq + Hash, T> Finished<N, T> {
    /// Locks the results for reading.
    pub fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<N, T>>> {
        self.map
            .lock()
            .map_err(|_| Error::msg("internal: a worker panicked"))
    }
}

/// Runs `work` once for every node of `order`, each after its `deps` (those
/// outside `order` are ignored), at most `jobs` at a time. When a node's
/// work panics, `panicked(node, message)` is its error.
pub fn run<N, T, W>(
    jobs: usize,
    order: &[N],
    deps: impl Fn(N) -> Vec<N>,
    panicked: impl Fn(N, String) -> Error,
    work: W,
) -> Result<HashMap<N, T>>
where
    N: Copy + Eq + Hash + Send + Sync,
    T: Send,
    W: Fn(N, &Finished<N, T>) -> Result<T> + Sync,
{
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .thread_name(|i| format!("strata-step-{i}"))
        .build()
        .map_err(|e| Error::msg(format!("cannot start worker threads: {e}")))?;
    let position: HashMap<N, usize> = order.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut waiting: HashMap<N, usize> = HashMap::with_capacity(order.len());
    let mut dependents: HashMap<N, Vec<N>> = HashMap::new();
    for &n in order {
        let mut ds: Vec<N> = deps(n);
        ds.retain(|d| position.contains_key(d));
        ds.sort_by_key(|d| position[d]);
        ds.dedup();
        waiting.insert(n, ds.len());
        for d in ds {
            dependents.entry(d).or_default().push(n);
        }
    }
    let finished = Finished {
        map: Mutex::new(HashMap::with_capacity(order.len())),
    };
    // A node's result, or the message of its work's panic.
    let (tx, rx) = mpsc::channel::<(N, std::result::Result<Result<T>, String>)>();
    let mut failures: Vec<Error> = Vec::new();
    // Ready nodes by their position in `order`, the earliest first.
    let mut ready: BinaryHeap<Reverse<usize>> = (order.iter())
        .filter(|n| waiting[n] == 0)
        .map(|n| Reverse(position[n]))
        .collect();
    let (work, finished_ref) = (&work, &finished);
    pool.in_place_scope(|scope| {
        let mut running = 0usize;
        let mut done = 0usize;
        loop {
            if failures.is_empty() {
                while running < jobs.max(1) {
                    let Some(Reverse(i)) = ready.pop() else { break };
                    let n = order[i];
                    let tx = tx.clone();
                    running += 1;
                    scope.spawn(move |_| {
                        // A panic becomes this node's failure (the closure
                        // is not observed again after it fails).
                        let r = catch_unwind(AssertUnwindSafe(|| work(n, finished_ref)))
                            .map_err(|p| panic_message(&*p));
                        let _ = tx.send((n, r));
                    });
                }
            }
            if running == 0 {
                break;
            }
            let Ok((n, r)) = rx.recv() else { break };
            running -= 1;
            done += 1;
            match r {
                Ok(Ok(t)) => {
                    if let Ok(mut m) = finished_ref.map.lock() {
                        m.insert(n, t);
                    }
                    for d in dependents.get(&n).into_iter().flatten() {
                        if let Some(w) = waiting.get_mut(d) {
                            *w -= 1;
                            if *w == 0 {
                                ready.push(Reverse(position[d]));
                            }
                        }
                    }
                }
                Ok(Err(e)) => failures.push(e),
                Err(message) => failures.push(panicked(n, message)),
            }
            if done == order.len() {
                break;
            }
        }
    });
    if !failures.is_empty() {
        return Err(failures.remove(0));
    }
    finished
        .map
        .into_inner()
        .map_err(|_| Error::msg("internal: a worker panicked"))
}

/// The text of a panic's payload (`panic!` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn named(n: usize, message: String) -> Error {
        Error::msg(format!("node {n} panicked: {message}"))
    }

    /// A diamond 0 -> {1, 2} -> 3, and 4 after 3.
    fn deps(n: usize) -> Vec<usize> {
        match n {
            1 | 2 => vec![0],
            3 => vec![1, 2],
            4 => vec![3],
            _ => vec![],
        }
    }

    #[test]
    fn a_node_runs_after_its_dependencies_and_sees_their_results() {
        let order = [0, 1, 2, 3, 4];
        let out = run(
            2,
            &order,
            deps,
            named,
            |n, done: &Finished<usize, usize>| {
                let m = done.lock()?;
                for d in deps(n) {
                    assert!(m.contains_key(&d), "{n} started before {d} finished");
                }
                Ok(deps(n).iter().map(|d| m[d]).sum::<usize>() + 1)
            },
        )
        .unwrap();
        assert_eq!(out[&3], 5);
        assert_eq!(out[&4], 6);
    }

    #[test]
    fn with_one_job_nodes_run_in_the_given_order() {
        let order = [0, 2, 1, 3, 4];
        let seen = Mutex::new(Vec::new());
        run(1, &order, deps, named, |n, _: &Finished<usize, ()>| {
            seen.lock().unwrap().push(n);
            Ok(())
        })
        .unwrap();
        assert_eq!(*seen.lock().unwrap(), order);
    }

    #[test]
    fn no_node_starts_after_the_first_failure() {
        // 0 fails; 1..=9 are independent of it but later in the order.
        let order: Vec<usize> = (0..10).collect();
        let started = AtomicUsize::new(0);
        let r = run(
            1,
            &order,
            |_| vec![],
            named,
            |n, _: &Finished<usize, ()>| {
                started.fetch_add(1, Ordering::SeqCst);
                if n == 0 {
                    Err(Error::msg("boom"))
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(r.unwrap_err().to_string(), "boom");
        assert_eq!(started.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn at_most_jobs_nodes_run_at_once() {
        let order: Vec<usize> = (0..16).collect();
        let (now, max) = (AtomicUsize::new(0), AtomicUsize::new(0));
        run(
            3,
            &order,
            |_| vec![],
            named,
            |_, _: &Finished<usize, ()>| {
                let c = now.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(c, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(5));
                now.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            },
        )
        .unwrap();
        assert!(max.load(Ordering::SeqCst) <= 3);
    }

    #[test]
    fn a_panicking_node_fails_the_run_naming_it_and_nothing_starts_after() {
        // 0 panics while holding the results lock (poisoning it); 1..=9
        // are independent of it but later in the order. Run on a thread
        // so that a scheduler that waits forever fails the test instead
        // of hanging it.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let order: Vec<usize> = (0..10).collect();
            let started = AtomicUsize::new(0);
            let r = run(
                1,
                &order,
                |_| vec![],
                named,
                |n, done: &Finished<usize, ()>| {
                    started.fetch_add(1, Ordering::SeqCst);
                    if n == 0 {
                        let _held = done.lock()?;
                        panic!("boom in step zero");
                    }
                    Ok(())
                },
            );
            let _ = tx.send((r.map(|_| ()), started.load(Ordering::SeqCst)));
        });
        let (r, started) = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the scheduler hung after a worker panicked");
        let text = r.unwrap_err().to_string();
        assert_eq!(text, "node 0 panicked: boom in step zero");
        assert_eq!(started, 1);
    }

    #[test]
    fn a_panic_beside_a_running_node_lets_it_finish_and_fails() {
        // 0 and 1 run at once; 1 panics once 0 has started, 0 then finishes.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (go_tx, go_rx) = mpsc::channel::<()>();
            let go_rx = Mutex::new(go_rx);
            let finished = AtomicUsize::new(0);
            let r = run(
                2,
                &[0usize, 1],
                |_| vec![],
                named,
                |n, _: &Finished<usize, ()>| {
                    if n == 1 {
                        go_rx.lock().unwrap().recv().unwrap();
                        panic!("boom");
                    }
                    go_tx.send(()).unwrap();
                    finished.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                },
            );
            let _ = tx.send((r.map(|_| ()), finished.load(Ordering::SeqCst)));
        });
        let (r, finished) = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the scheduler hung after a worker panicked");
        assert_eq!(r.unwrap_err().to_string(), "node 1 panicked: boom");
        assert_eq!(finished, 1);
    }
}
