//! An fsync that fails (EIO injected into the simulated storage) reaches
//! every task waiting on it as an error, and every later append fails:
//! nothing is acknowledged that the failed sync should have covered, and
//! after a power loss every acknowledged entry is still there.

mod common;
use common::*;
use std::cell::RefCell;
use std::rc::Rc;
use walrus_async::{AsyncWalrus, Runtime};
use walrus_wal::testing::{Crash, Fault, FaultKind, SimStorage};
use walrus_wal::Error;

const TASKS: usize = 12;
const PER_TASK: usize = 30;

/// One task's appends, in order: Ok(index) or the error's text.
type Outcomes = Vec<Result<usize, String>>;

#[test]
fn a_failed_fsync_errors_its_waiters_and_every_later_append() {
    let sim = SimStorage::new();
    let outcomes: Rc<RefCell<Vec<Outcomes>>> = Rc::new(RefCell::new(vec![Vec::new(); TASKS]));
    let eio_seen = Rc::new(RefCell::new(0usize));
    Runtime::new().unwrap().block_on({
        let (sim, outcomes, eio_seen) = (sim.clone(), outcomes.clone(), eio_seen.clone());
        async move {
            let wal = Rc::new(AsyncWalrus::open(on_sim(&sim)).await.unwrap());
            let tasks: Vec<_> = (0..TASKS)
                .map(|w| {
                    let (wal, sim, outcomes, eio_seen) =
                        (wal.clone(), sim.clone(), outcomes.clone(), eio_seen.clone());
                    walrus_async::spawn(async move {
                        for i in 0..PER_TASK {
                            if w == 0 && i == PER_TASK / 3 {
                                sim.inject(Fault {
                                    kind: FaultKind::Sync,
                                    nth: 0,
                                    errno: libc_eio(),
                                });
                            }
                            let r = wal.append(&format!("t{}", w % 3), &payload(w, i)).await;
                            let r = match r {
                                Ok(()) => Ok(i),
                                Err(e) => {
                                    if let Error::Io { source, .. } = &e {
                                        if source.raw_os_error() == Some(libc_eio()) {
                                            *eio_seen.borrow_mut() += 1;
                                        }
                                    }
                                    Err(e.to_string())
                                }
                            };
                            outcomes.borrow_mut()[w].push(r);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            let wal = Rc::try_unwrap(wal).ok().unwrap();
            assert!(
                matches!(wal.append("t0", b"late").await, Err(Error::Failed(_))),
                "an append after the failure must be refused"
            );
            wal.into_walrus().await.unwrap().simulate_crash();
        }
    });
    let outcomes = outcomes.take();
    assert!(
        *eio_seen.borrow() >= 2,
        "the failed fsync reached {} waiter(s) as EIO",
        eio_seen.borrow()
    );
    let mut acked = Vec::new();
    for (w, results) in outcomes.iter().enumerate() {
        let first_err = results.iter().position(Result::is_err);
        let first_err = first_err.unwrap_or_else(|| panic!("task {w} never saw the failure"));
        assert!(
            results[first_err..].iter().all(Result::is_err),
            "task {w} was acknowledged after a failed fsync: {results:?}"
        );
        acked.extend(
            results[..first_err]
                .iter()
                .map(|r| (w, *r.as_ref().unwrap())),
        );
    }
    assert!(
        !acked.is_empty(),
        "the fault came before any acknowledgement"
    );
    let wal = on_sim(&sim.crash(Crash::LoseUnsynced)).open().unwrap();
    for t in 0..3 {
        let mine: Vec<_> = acked.iter().copied().filter(|(w, _)| w % 3 == t).collect();
        check_topic(&drain(&wal, &format!("t{t}")), &mine, "after the failure");
    }
}

fn libc_eio() -> i32 {
    5
}
