//! `metrics::install` called from many threads at once, as the services of one process (or
//! tests under `cargo test`) call it. A test binary of its own, so that these calls are the
//! first installation of the process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Barrier};

const THREADS: usize = 32;

#[test]
fn concurrent_installs_all_get_the_one_recorder() {
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let handle = herald_service::metrics::install();
                // Recorded through the global recorder, whichever call installed it.
                metrics::counter!("herald_test_installs_total", "thread" => thread.to_string())
                    .increment(1);
                handle
            })
        })
        .collect();
    let handles: Vec<_> = threads
        .into_iter()
        .map(|thread| thread.join().expect("the thread ran"))
        .collect();
    for (caller, handle) in handles.iter().enumerate() {
        let handle = handle
            .as_ref()
            .unwrap_or_else(|err| panic!("install failed for caller {caller}: {err}"));
        // Every caller's handle sees what every thread recorded: it is the installed one.
        let rendered = handle.render();
        for thread in 0..THREADS {
            let line = format!("herald_test_installs_total{{thread=\"{thread}\"}} 1");
            assert!(
                rendered.lines().any(|l| l == line),
                "caller {caller} does not see thread {thread}'s counter:\n{rendered}"
            );
        }
    }
    // A later call still gets the same recorder.
    let later = herald_service::metrics::install().unwrap();
    assert!(later.render().contains("herald_test_installs_total"));
}
